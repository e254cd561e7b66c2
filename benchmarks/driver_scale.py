"""The driver's control cost per step as groups and ranks grow: the real driver, ranks that do nothing.

    make bench BENCH=driver_scale [ARGS='--groups 2 8 32 64 --ranks 1 4 --max-ranks 64']
    make bench BENCH=driver_scale ARGS='--baseline /tmp/elastrain-before'   # before and after, one run

Every rank is a :class:`~elastrain_trainer.group.null_worker.NullRankWorker` (a test-only seam,
``DriverOptions.worker_seam``): it answers every call the driver makes with the same messages and
does no computation, in a process without torch. All pods' groups share one local Ray node. Per
configuration (groups x ranks per group), after a few warm-up steps:

  wall_ms       wall time per step with ranks that return at once: all of it is control cost
  driver_cpu_ms the driver process's CPU time per step (its Ray client threads included)
  critical_ms   with every rank's step sleeping ``--step-ms``: wall time per step minus that sleep,
                the part of the driver's work the ranks wait for (what pipelining hides is not in it)
  calls         Ray calls the ranks answered per step (the driver's control messages)

Each shape runs with one call per group per phase (the default) and with ``quorum_ahead`` (pipelined
control: the next step's quorum formed right after each step, one call per group per step).

The null leader answers for its ranks (a null follower only waits for its release), so the leader's
hand-off to its ranks over the group's store runs apart from the driver and is measured apart:

  fanout_ms     one command posted by the leader and answered by every other rank of the group, over
                a real TCP store (the followers are threads of one process here), per step phase

With ``--baseline DIR`` the same measurements run first on the trainer package of the source tree in DIR
(a checkout of an older commit that has the seam), in a subprocess, and both are printed side by side. The ranks here
are on one machine with the driver, so the constants are an upper bound of a cluster's.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RUST_LOG", "warn")

import ray

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.driver import Driver, DriverOptions, RayNodePods
from elastrain_trainer.driver.options import WorkerSeam
from elastrain_trainer.group.null_worker import NullRankWorker
from elastrain_trainer.localmode import LocalCluster
from report import print_table, write_json

#: Steps not measured at the start (actors warming up, the first quorum).
WARMUP_STEPS = 3


class SharedNodePods(RayNodePods):
    """``pods`` simulated worker pods of ``ranks`` ranks, all on one Ray node (many groups, few processes)."""

    def __init__(self, ray_node: str, *, pods: int, ranks: int) -> None:
        self.ray_node = ray_node
        self.pods = pods
        self.ranks_per_pod = ranks

    def alive(self) -> dict[str, dict[str, Any]]:
        return {
            f"pod{i:03d}": {"NodeManagerAddress": "127.0.0.1", "ranks": self.ranks_per_pod} for i in range(self.pods)
        }

    @staticmethod
    def ranks(node: dict[str, Any]) -> int:
        return int(node["ranks"])

    @staticmethod
    def address(node: dict[str, Any]) -> str:
        return str(node["NodeManagerAddress"])

    def ray_node_id(self, pod_id: str) -> str:
        return self.ray_node


def config(groups: int, ranks: int, steps: int) -> TrainerConfig:
    batch = 2 * groups * ranks
    return TrainerConfig.model_validate(
        {
            "model": {"vocabSize": 64, "numLayers": 1, "numHeads": 2, "dim": 16, "seqLen": 16},
            "data": {"syntheticTokens": max(1024, 16 * batch * 4), "numShards": 4 * groups},
            "steps": steps,
            "globalBatchSize": batch,
        }
    )


def measure(
    ray_node: str, *, groups: int, ranks: int, steps: int, step_seconds: float, quorum_ahead: bool = False
) -> dict[str, float]:
    """One driver run: ``steps`` steps with ranks that return at once, then ``steps`` whose ranks sleep.

    Per-step wall and driver CPU time of each half past its warm-up, and calls per step.
    """
    options = DriverOptions(
        worker_seam=WorkerSeam(NullRankWorker, {"groups": groups}),
        start_groups=groups,
        step_timeout_seconds=600,
    )
    if quorum_ahead:  # not passed otherwise: an older driver (the baseline) has no such option
        options = dataclasses.replace(options, quorum_ahead=True)
    driver = Driver(config(groups, ranks, 2 * steps), options, pods=SharedNodePods(ray_node, pods=groups, ranks=ranks))
    marks: list[tuple[float, float]] = []

    def pace(d: Driver, step: int) -> None:
        if step == steps:  # the second half: every rank's step sleeps (what the driver's work can hide behind)
            d.options = dataclasses.replace(options, step_delay=step_seconds)

    try:
        result = driver.run(hook=pace, on_step=lambda _m: marks.append((time.perf_counter(), time.process_time())))
        calls = sum(ray.get([a.call_count.remote() for g in driver.groups.values() for a in g.actors]))
    finally:
        driver.shutdown()
    if result.step != 2 * steps or len(marks) != 2 * steps:
        raise RuntimeError(f"{groups}x{ranks}: {result.step} of {2 * steps} steps in {len(marks)} attempts")

    def per_step(first: int, last: int) -> tuple[float, float]:
        (wall0, cpu0), (wall1, cpu1) = marks[first], marks[last]
        return 1000 * (wall1 - wall0) / (last - first), 1000 * (cpu1 - cpu0) / (last - first)

    wall, cpu = per_step(WARMUP_STEPS, steps - 1)
    paced, _ = per_step(steps + 1, 2 * steps - 1)
    return {"wall_ms": wall, "driver_cpu_ms": cpu, "paced_ms": paced, "calls": calls / len(marks)}


def measure_fanout(world: int, *, rounds: int = 200) -> float:
    """Milliseconds per command the group's leader posts and gathers from ``world - 1`` followers."""
    import threading
    from datetime import timedelta

    from torch._C._distributed_c10d import TCPStore

    from elastrain_trainer.group import StepPlan
    from elastrain_trainer.group.control import RELEASE, ControlChannel
    from elastrain_trainer.ledger import Piece

    server = TCPStore("127.0.0.1", 0, 1, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=30))
    leader = ControlChannel(server, rank=0, world=world)

    def follow(rank: int) -> None:
        client = TCPStore("127.0.0.1", server.port, 1, is_master=False, timeout=timedelta(seconds=30))
        channel = ControlChannel(client, rank=rank, world=world)
        while (command := channel.next_command()) != RELEASE:
            channel.answer(command)

    threads = [threading.Thread(target=follow, args=(rank,)) for rank in range(1, world)]
    for thread in threads:
        thread.start()
    plan = StepPlan(step=1, pieces=[Piece(0, 16 * i, 16 * i + 16) for i in range(4)], weight=1.0, participants=64)
    leader.gather(leader.post(plan))  # warm-up
    start = time.perf_counter()
    for _ in range(rounds):
        leader.gather(leader.post(plan))
    seconds = time.perf_counter() - start
    leader.release()
    for thread in threads:
        thread.join()
    return 1000 * seconds / rounds


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    shapes = [(g, r) for r in args.ranks for g in args.groups if g * r <= args.max_ranks]
    cluster = LocalCluster(pods=1, ranks_per_pod=max(g * r for g, r in shapes))
    rows: list[dict[str, Any]] = []
    try:
        ray_node = cluster.pod_ids()[0]
        modes = [False] if args.rows_to is not None else [False, True]  # the baseline has no quorum_ahead
        for (groups, ranks), ahead in itertools.product(shapes, modes):
            run = measure(
                ray_node,
                groups=groups,
                ranks=ranks,
                steps=args.steps,
                step_seconds=args.step_ms / 1000,
                quorum_ahead=ahead,
            )
            row = {
                "mode": "quorum ahead" if ahead else "one call per phase",
                "groups": groups,
                "ranks": ranks,
                "wall_ms": run["wall_ms"],
                "driver_cpu_ms": run["driver_cpu_ms"],
                "critical_ms": max(0.0, run["paced_ms"] - args.step_ms),
                "calls": run["calls"],
            }
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    finally:
        cluster.shutdown()
    return rows


def run_baseline(tree: Path, argv: list[str]) -> list[dict[str, Any]]:
    """The same measurements (this script) on the trainer of source tree ``tree``, in a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        here = Path(__file__).resolve().parent
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree / "trainer_image"), str(here)])}
        subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), *argv, "--rows-to", str(out)],
            check=True,
            env=env,
        )
        rows: list[dict[str, Any]] = json.loads(out.read_text())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--groups", type=int, nargs="+", default=[2, 8, 32, 64])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--max-ranks", type=int, default=64, help="skip shapes with more rank processes than this")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--step-ms", type=float, default=50.0, help="simulated compute per step (critical_ms)")
    parser.add_argument("--baseline", type=Path, help="also measure this source tree (before), in a subprocess")
    parser.add_argument("--rows-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    argv = [
        *("--groups", *map(str, args.groups)),
        *("--ranks", *map(str, args.ranks)),
        *("--max-ranks", str(args.max_ranks), "--steps", str(args.steps), "--step-ms", str(args.step_ms)),
    ]
    before = run_baseline(args.baseline, argv) if args.baseline else []
    after = run_all(args)
    if args.rows_to is not None:
        args.rows_to.write_text(json.dumps(after))
        return
    for row in after:
        row["fanout_ms"] = measure_fanout(row["ranks"]) if row["ranks"] > 1 else 0.0
    header = ["driver", "groups", "ranks", "wall_ms", "driver_cpu_ms", "critical_ms", "calls", "fanout_ms"]
    labelled = [("before", row) for row in before] + [(f"after: {row['mode']}", row) for row in after]
    print_table(
        f"driver control cost per step ({args.steps} steps, {WARMUP_STEPS} warm-up, "
        f"simulated step {args.step_ms:.0f} ms)",
        header,
        [[label, *(row.get(k, "-") for k in header[1:])] for label, row in labelled],
    )
    path = write_json(
        "driver_scale",
        {
            "steps": args.steps,
            "step_ms": args.step_ms,
            "before": before,
            "after": after,
            "baseline": str(args.baseline or ""),
        },
    )
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
