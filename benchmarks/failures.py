"""What a dead or hung worker costs the others: the step watchdog at product defaults beside fixed timeouts.

    make bench BENCH=failures [ARGS='--runs 5']

Per run and mode, on a local Ray cluster of 3 simulated pods x 1 rank (CPU, gloo, torchft, FSDP2), a tiny
GPT trains; past the watchdog's warm-up, one group at a time (the others training at full size in between):
  rank_killed           its rank process gets SIGKILL between steps
  frozen_in_step        its rank freezes itself (SIGSTOP) in a step, before its forward (``stop_in_step``)
  frozen_between_steps  its rank process gets SIGSTOP between steps
For each: ``stall``, the fault -> the others' next committed step (s); ``full``, the fault -> the next
committed step at full size again (s; the replacement group's set-up included); ``by``, what fenced it.

Modes: ``defaults`` (``spec.faultTolerance`` defaults: hang factor 10, floor 10 s, heartbeat 1 s) and
``legacy`` (before the watchdog: collectives 30 s, steps 120 s, heartbeat 1 s; ``--legacy-timeouts``).
A fault not back at full size within ``--cap`` seconds is reported at the cap (``never`` in ``by``).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Any

os.environ.setdefault("RUST_LOG", "warn")

import ray

from elastrain_trainer.config import FaultToleranceConfig, TrainerConfig
from elastrain_trainer.driver import Driver, DriverOptions, StopInStep
from elastrain_trainer.driver.options import apply_fault_tolerance
from elastrain_trainer.driver.watchdog import HangPolicy
from elastrain_trainer.localmode import LocalCluster
from report import print_table, summarise, write_json

GROUPS = 3
FAULTS = ("rank_killed", "frozen_in_step", "frozen_between_steps")
#: Committed steps at full size before each fault (the first fault also waits for the watchdog's warm-up).
STEADY_STEPS = 5


def config() -> TrainerConfig:
    return TrainerConfig.model_validate(
        {
            "model": {"vocabSize": 256, "numLayers": 2, "numHeads": 4, "dim": 64, "seqLen": 64},
            "data": {"syntheticTokens": 1 << 16, "numShards": 32},
            "steps": 100000,
            "globalBatchSize": 12,
            "lrSchedule": {"warmupSteps": 2},
        }
    )


def options(mode: str) -> DriverOptions:
    base = apply_fault_tolerance(DriverOptions(start_groups=GROUPS), FaultToleranceConfig())
    if mode == "legacy":  # no watchdog: a bound past the step timeout never fires
        return replace(base, hang=HangPolicy(factor=1000.0, floor_seconds=3600.0, startup_seconds=3600.0))
    return base


def _pid(group: Any) -> int:
    return int(ray.get(group.actors[0].__ray_call__.remote(lambda _self: os.getpid()), timeout=60))


@dataclass
class Injector:
    """The ``Driver.run`` hook: each fault in turn once the job trains at full size, then its cost."""

    cap: float
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: tuple[str, float, str] | None = None
    """(fault, time it was injected in driver seconds, victim group)."""

    def __call__(self, d: Driver, step: int) -> None:
        now = time.monotonic() - d.start_time
        if self.pending is not None:
            fault, at, victim = self.pending
            after = [m for m in d.metrics if m.committed and m.wall_time > at]
            full = [m for m in after if m.groups == GROUPS]
            if not full and now - at < self.cap:
                return
            events = [e for e in d.events if e["time"] > at and e.get("group") == victim]
            by = next((e["kind"] for e in events if e["kind"] in ("group_hung", "train_timeout")), None)
            lost = next((e["reason"] for e in events if e["kind"] == "group_lost"), None)
            self.results[fault] = {
                "stall": after[0].wall_time - at if after else self.cap,
                "full": full[0].wall_time - at if full else self.cap,
                "by": by or (lost.split(":")[0] if lost else "never"),
            }
            self.pending = None
            return
        if len(self.results) == len(FAULTS):
            d.cfg = d.cfg.model_copy(update={"steps": d.step})  # finish now
            return
        recent = [m for m in d.metrics if m.committed][-STEADY_STEPS:]
        warm = d.step_times.committed_steps >= d.options.hang.warmup_steps
        if not warm or len(recent) < STEADY_STEPS or any(m.groups < GROUPS for m in recent):
            return
        fault = FAULTS[len(self.results)]
        victim = d.groups[sorted(d.groups)[0]]
        if fault == "rank_killed":
            os.kill(_pid(victim), signal.SIGKILL)
        elif fault == "frozen_in_step":
            d.options = replace(d.options, stop_in_step=StopInStep(victim.group_id, d.step))
        else:
            os.kill(_pid(victim), signal.SIGSTOP)
        self.pending = (fault, time.monotonic() - d.start_time, victim.group_id)


def one_run(mode: str, cap: float) -> dict[str, dict[str, Any]]:
    driver = Driver(config(), options(mode))
    injector = Injector(cap)
    try:
        driver.run(hook=injector)
    finally:
        driver.shutdown()
    return injector.results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--legacy-timeouts", action="store_true", help="also measure the fixed timeouts")
    parser.add_argument("--cap", type=float, default=180.0, help="seconds to wait for full size again")
    args = parser.parse_args()
    modes = ["defaults", "legacy"] if args.legacy_timeouts else ["defaults"]
    cluster = LocalCluster(pods=GROUPS, ranks_per_pod=1)
    samples: dict[str, dict[str, dict[str, list[Any]]]] = {}
    try:
        for _ in range(args.runs):
            for mode in modes:
                for fault, values in one_run(mode, args.cap).items():
                    entry = samples.setdefault(mode, {}).setdefault(fault, {"stall": [], "full": [], "by": []})
                    for key, value in values.items():
                        entry[key].append(value)
    finally:
        cluster.shutdown()
    rows = []
    for mode, faults in samples.items():
        for fault, entry in faults.items():
            by = statistics.mode(entry["by"])
            rows.append(
                [mode, fault, statistics.median(entry["stall"]), statistics.median(entry["full"]), by, len(entry["by"])]
            )
    print_table(
        f"failures: {GROUPS} groups x 1 rank, median of {args.runs} run(s)",
        ["mode", "fault", "stall s", "full again s", "fenced by", "runs"],
        rows,
    )
    payload = {
        mode: {
            fault: {"stall": summarise(e["stall"]), "full": summarise(e["full"]), "by": e["by"]}
            for fault, e in faults.items()
        }
        for mode, faults in samples.items()
    }
    print(write_json("failures", {"runs": args.runs, "groups": GROUPS, **payload}))


if __name__ == "__main__":
    main()
