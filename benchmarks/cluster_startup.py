"""How fast the local control plane starts and notices node loss.

    make bench BENCH=cluster_startup [ARGS='--runs 3']

Per run: a fresh cluster in its own state directory (binaries already built), then
  up       control plane started and answering /readyz, default service account present
  nodes    4 fake GPU nodes created and Ready
  pod      a 1-GPU pod created -> Running on a fake node
  notready a node's heartbeat stopped -> node Ready=Unknown
  evicted  NotReady -> its pod marked for deletion by the taint eviction controller
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from elastrain_dev import nodes
from elastrain_dev.cluster import CACHE_ROOT, LocalCluster, build_binaries
from elastrain_dev.wait import until
from report import print_table, summarise, write_json

STAGES = ("build_cached", "up", "nodes", "pod", "notready", "evicted")


def _get(cluster: LocalCluster, *args: str) -> dict[str, Any] | None:
    return cluster.get_json(*args)


def one_run(index: int) -> dict[str, float]:
    times: dict[str, float] = {}
    t0 = time.monotonic()
    bin_dir = build_binaries()
    times["build_cached"] = time.monotonic() - t0
    cluster = LocalCluster(CACHE_ROOT / "clusters" / f"bench-{os.getpid()}-{index}")
    try:
        t0 = time.monotonic()
        cluster.up(bin_dir=bin_dir)
        times["up"] = time.monotonic() - t0
        t0 = time.monotonic()
        nodes.add_nodes(cluster, count=4, gpus=8)
        nodes.wait_nodes_ready(cluster)
        times["nodes"] = time.monotonic() - t0
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": "gpu-node-0"},
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
            },
        }
        t0 = time.monotonic()
        cluster.kubectl("create", "-f", "-", input=json.dumps(pod))
        until(
            lambda: (p := _get(cluster, "pod", "p")) and p["status"].get("phase") == "Running",
            what="pod Running",
            interval=0.1,
        )
        times["pod"] = time.monotonic() - t0
        t0 = time.monotonic()
        nodes.fail_node(cluster, "gpu-node-0")

        def not_ready() -> bool:
            node = _get(cluster, "node", "gpu-node-0") or {}
            return any(
                c["type"] == "Ready" and c["status"] != "True" for c in node.get("status", {}).get("conditions", [])
            )

        until(not_ready, what="node NotReady", interval=0.2)
        times["notready"] = time.monotonic() - t0
        t0 = time.monotonic()
        until(
            lambda: (
                "deletionTimestamp"
                in ((_get(cluster, "pod", "p") or {"metadata": {"deletionTimestamp": 1}})["metadata"])
            ),
            what="pod evicted",
            interval=0.2,
        )
        times["evicted"] = time.monotonic() - t0
    finally:
        cluster.down()
    print(f"run {index + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()), flush=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "1")))
    args = parser.parse_args()
    runs = [one_run(i) for i in range(args.runs)]
    stats = {stage: summarise([r[stage] for r in runs]) for stage in STAGES}
    print_table(
        "local control plane (seconds)",
        ["stage", "median", "min", "max", "runs"],
        [[s, v["median"], v["min"], v["max"], int(v["n"])] for s, v in stats.items()],
    )
    path = write_json("cluster_startup", {"runs": runs, "stats": stats})
    print(f"json: {path}")
    print("summary: " + ", ".join(f"{s} {v['median']:.1f}s" for s, v in stats.items()))


if __name__ == "__main__":
    sys.exit(main())
