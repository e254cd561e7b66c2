"""What a planned scale-down costs the workers that stay: graceful leave against deleting at once.

    make bench BENCH=planned_resize [ARGS='--runs 3 --to 1']

Per run, on a fresh local cluster (control plane, fake nodes, the pod runner, the operator process,
the demo job with 3 workers and ``elastic.minReplicas: 1``): ``kubectl scale tj --replicas TO`` once
every worker trains, then the job runs to its last step (``elastrain_dev.scaledown``). From the head's
run summary:
  pause      the longest gap between committed steps in the 5 steps after the groups left (s)
  steady     the median gap between committed steps before the scale-down (s)
  steps      pause / steady
  lost       groups the driver saw die (group_lost), and quorums abandoned
Each run is done twice: graceful (today), and ``--legacy`` behaviour (``elastic.leaveTimeoutSeconds: 0``:
the pods deleted at once, as before graceful leave), in the same invocation.
Not yet measured here (issue 29): eviction of one worker, scale-up 2 -> 4.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from elastrain_dev.cluster import CACHE_ROOT, LocalCluster
from elastrain_dev.scaledown import run_scale_down
from report import print_table, summarise, write_json


def one_run(index: int, *, to: int, legacy: bool) -> dict[str, Any]:
    cluster = LocalCluster(CACHE_ROOT / "clusters" / f"bench-resize-{os.getpid()}-{index}-{int(legacy)}")
    try:
        with tempfile.TemporaryDirectory() as output:
            result = run_scale_down(cluster, namespace="planned-resize", output=Path(output), to=to, legacy=legacy)
    finally:
        cluster.down()
    kinds = [e["kind"] for e in result.summary["events"]]
    run = {
        "mode": "legacy" if legacy else "graceful",
        "pause": result.pause,
        "steady": result.steady,
        "steps": result.pause / result.steady if result.steady else 0.0,
        "left": kinds.count("group_left"),
        "lost": kinds.count("group_lost"),
        "abandoned": kinds.count("quorum_abandoned"),
        "phase": result.status.get("phase"),
    }
    print(f"run {index + 1} ({run['mode']}): {run}", flush=True)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "1")))
    parser.add_argument("--to", type=int, default=1, help="workers after the scale-down (from 3)")
    args = parser.parse_args()
    runs = [one_run(i, to=args.to, legacy=legacy) for i in range(args.runs) for legacy in (False, True)]
    rows = []
    for mode in ("graceful", "legacy"):
        mine = [r for r in runs if r["mode"] == mode]
        pause, steady = summarise([r["pause"] for r in mine]), summarise([r["steady"] for r in mine])
        lost = sum(r["lost"] for r in mine)
        abandoned = sum(r["abandoned"] for r in mine)
        rows.append([f"3 -> {args.to} {mode}", pause["median"], steady["median"], pause["median"] / steady["median"],
                     lost, abandoned, len(mine)])  # fmt: skip
    print_table(
        "planned scale-down: the survivors' pause (seconds, median)",
        ["case", "pause", "steady step", "pause/step", "groups lost", "quorums abandoned", "runs"],
        rows,
    )
    path = write_json("planned_resize", {"runs": runs, "to": args.to})
    print(f"json: {path}")


if __name__ == "__main__":
    sys.exit(main())
