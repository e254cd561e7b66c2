"""What a lost replica group costs the others, and what a durable checkpoint blocks.

    make bench BENCH=trainer_resize [ARGS='--runs 3']

Per run, on a local Ray cluster of 2 simulated pods x 2 ranks (CPU, gloo, torchft, FSDP2):
  shrink_pause   a rank of one group is killed -> the survivors' next committed step (s)
  discarded      attempted steps that did not commit around the loss (the in-flight step)
  rolled_back    committed steps lost (the survivors never reload: expected 0)
  join_commit    the replacement group's launch (actors created) -> its first committed step (s)
  heal           the joiner's state transfer from a live peer inside its first quorum (s)
  heal_stall     survivors' extra time in the step the joiner healed, over the median step (s)
Then, in one process: the time a DCP save blocks training, synchronous vs asynchronous.

Then the same loss with plain Ray Train V2 (TorchTrainer, 4 workers on the same 2 pods, restart on
failure, resuming from a step file so no work is redone):
  v2_pause       a worker is killed -> the first step reported after the worker group restarted (s)
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RUST_LOG", "warn")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")

import ray

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.driver import Driver, DriverOptions
from elastrain_trainer.driver.lighthouse import LighthouseOptions
from elastrain_trainer.group.worker import FaultTimeouts
from elastrain_trainer.localmode import LocalCluster
from report import print_table, summarise, write_json

KILL_AFTER_STEPS_TOGETHER = 3
STEPS_AFTER_JOIN = 5
#: A shrink pause longer than this prints the run's driver events (to explain it).
OUTLIER_SECONDS = 5.0


def config(steps: int) -> TrainerConfig:
    return TrainerConfig.model_validate(
        {
            "model": {"vocabSize": 256, "numLayers": 2, "numHeads": 4, "dim": 64, "seqLen": 64},
            "data": {"syntheticTokens": 1 << 16, "numShards": 32},
            "steps": steps,
            "globalBatchSize": 16,
            "lrSchedule": {"warmupSteps": 2},
        }
    )


def one_run(heartbeat_ms: int) -> dict[str, float]:
    cfg = config(steps=100000)
    options = DriverOptions(
        lighthouse=LighthouseOptions(heartbeat_timeout_ms=heartbeat_ms, join_timeout_ms=heartbeat_ms),
        timeouts=FaultTimeouts(collective_seconds=10, quorum_seconds=120, connect_seconds=10),
    )
    driver = Driver(cfg, options)
    marks: dict[str, Any] = {}

    def hook(d: Driver, step: int) -> None:
        together = len(d.committed) >= KILL_AFTER_STEPS_TOGETHER and all(
            len(a) == 2 for a in d.committed[-KILL_AFTER_STEPS_TOGETHER:]
        )
        if "kill" not in marks and together:
            victim = d.groups[sorted(g for g in d.groups if d.groups[g].ready)[-1]]
            marks.update(kill=time.monotonic() - d.start_time, victim=victim.group_id, step=d.step)
            marks["attempts"] = len(d.metrics)
            ray.kill(victim.actors[1], no_restart=True)
        newcomer = marks.get("newcomer")
        if newcomer is None and "kill" in marks:
            for event in d.events:
                if event["kind"] == "group_started" and event["time"] > marks["kill"]:
                    marks["newcomer"] = event["group"]
                    marks["launch"] = event["time"]
        if newcomer is not None and sum(1 for a in d.committed if newcomer in a) >= STEPS_AFTER_JOIN:
            d.cfg = d.cfg.model_copy(update={"steps": d.step})  # finish now

    try:
        result = driver.run(hook=hook)
    finally:
        driver.shutdown()
    metrics = result.metrics
    committed = [m for m in metrics if m.committed]
    after = [m for m in committed if m.wall_time > marks["kill"]]
    first_after = after[0]
    newcomer = marks["newcomer"]
    join_index = next(i for i, a in enumerate(result.committed) if newcomer in a)
    join_metric = committed[join_index]
    intervals = [b.wall_time - a.wall_time for a, b in itertools.pairwise(committed)]
    steady = statistics.median(intervals)
    heal = [e["heal_seconds"] for e in result.events if e["kind"] == "group_healed" and e["group"] == newcomer]
    if first_after.wall_time - marks["kill"] > OUTLIER_SECONDS:  # keep the story of an outlier
        print(f"outlier: kill at {marks['kill']:.2f} s", *result.events, sep="\n  ", file=sys.stderr)
    attempts_after_kill = [m for m in metrics[marks["attempts"] :] if m.wall_time <= first_after.wall_time]
    return {
        "shrink_pause": first_after.wall_time - marks["kill"],
        "discarded": float(sum(1 for m in attempts_after_kill if not m.committed)),
        "rolled_back": float(max(0, marks["step"] - (first_after.step - 1))),
        "join_commit": join_metric.wall_time - marks["launch"],
        "heal": heal[0] if heal else float("nan"),
        "heal_stall": max(0.0, (join_metric.wall_time - committed[join_index - 1].wall_time) - steady),
        "steady_step": steady,
    }


def _v2_train_loop(config: dict[str, Any]) -> None:
    """One Ray Train V2 worker: the same tiny model, a step log, and a step file to resume from."""
    import torch
    import torch.distributed as dist
    from ray import train

    from elastrain_trainer.models import build_model

    torch.set_num_threads(1)
    log, state = Path(config["log"]), Path(config["state"])
    rank = train.get_context().get_world_rank()
    if rank == 1:
        Path(config["pid"]).write_text(str(os.getpid()))
    cfg = TrainerConfig.model_validate_json(config["cfg"])
    model = build_model(cfg.model, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    start = int(state.read_text()) if state.exists() else 0
    tokens = torch.randint(0, cfg.model.vocab_size, (4, cfg.model.seq_len + 1))
    for step in range(start, config["steps"]):
        logits = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        loss.backward()
        for param in model.parameters():
            assert param.grad is not None
            dist.all_reduce(param.grad)
        optimizer.step()
        optimizer.zero_grad()
        if rank == 0:
            state.write_text(str(step + 1))
            with open(log, "a") as handle:
                handle.write(f"{step + 1} {time.time()}\n")
        time.sleep(config["delay"])


def ray_train_v2_pause(kill_after: int = 5, steps: int = 40) -> float:
    """Seconds from killing a Ray Train V2 worker to the first step after its worker group restarted."""
    import signal
    import threading

    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    with tempfile.TemporaryDirectory() as root:
        paths = {name: str(Path(root) / name) for name in ("log", "state", "pid")}
        marks: dict[str, float] = {}

        def killer() -> None:
            log = Path(paths["log"])
            while "kill" not in marks:
                lines = log.read_text().splitlines() if log.exists() else []
                if len(lines) >= kill_after and Path(paths["pid"]).exists():
                    marks["kill"] = time.time()
                    os.kill(int(Path(paths["pid"]).read_text()), signal.SIGKILL)
                time.sleep(0.01)

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        trainer = TorchTrainer(
            _v2_train_loop,
            train_loop_config={**paths, "cfg": config(steps).model_dump_json(), "steps": steps, "delay": 0.05},
            scaling_config=ScalingConfig(num_workers=4, resources_per_worker={"CPU": 0, "elastrain_worker": 1}),
            run_config=RunConfig(storage_path=root, failure_config=FailureConfig(max_failures=3)),
        )
        trainer.fit()
        thread.join(timeout=1)
        after = [float(line.split()[1]) for line in Path(paths["log"]).read_text().splitlines()]
        return min(t for t in after if t > marks["kill"]) - marks["kill"]


def checkpoint_blocking(runs: int) -> dict[str, list[float]]:
    """Seconds a save blocks the training loop: synchronous DCP vs asynchronous (staged, then written)."""
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    from elastrain_trainer.checkpoint import TrainState, save_train_state
    from elastrain_trainer.models import build_model
    from elastrain_trainer.optim import build_lr_scheduler, build_optimizer
    from elastrain_trainer.parallel import parallelize

    cfg = TrainerConfig.model_validate(
        {"model": {"vocabSize": 4096, "numLayers": 4, "numHeads": 8, "dim": 512, "seqLen": 128}}
    )
    store = dist.TCPStore("127.0.0.1", 0, is_master=True)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        model = parallelize(build_model(cfg.model, seed=0), init_device_mesh("cpu", (1,)), cfg)
        optimizer = build_optimizer(model.parameters(), cfg.optimizer)
        for param in model.parameters():
            param.grad = torch.zeros_like(param)
        optimizer.step()
        state = TrainState(model, optimizer, build_lr_scheduler(optimizer, cfg.lr_schedule, total_steps=cfg.steps))
        out: dict[str, list[float]] = {"sync": [], "async": [], "async_total": []}
        with tempfile.TemporaryDirectory() as root:
            for i in range(runs):
                for mode in ("sync", "async"):
                    start = time.perf_counter()
                    future = save_train_state(
                        state,
                        Path(root) / f"{mode}-{i}",
                        step=i,
                        manager_state={"step": i, "batches_committed": 0},
                        process_group=None,
                        use_async=mode == "async",
                    )
                    out[mode].append(time.perf_counter() - start)
                    if future is not None:
                        future.result()
                        out["async_total"].append(time.perf_counter() - start)
        return out
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--heartbeat-ms", type=int, default=500, help="lighthouse heartbeat timeout")
    args = parser.parse_args()
    cluster = LocalCluster(pods=2, ranks_per_pod=2)
    runs: list[dict[str, float]] = []
    try:
        for index in range(args.runs):
            runs.append(one_run(args.heartbeat_ms))
            print(f"run {index + 1}/{args.runs}: {runs[-1]}", file=sys.stderr, flush=True)
        for index in range(args.runs):
            runs[index]["v2_pause"] = ray_train_v2_pause()
            print(f"ray train v2 run {index + 1}/{args.runs}: {runs[index]['v2_pause']:.2f} s", file=sys.stderr)
    finally:
        cluster.shutdown()
    keys = list(runs[0])
    summary = {key: summarise([r[key] for r in runs]) for key in keys}
    blocking = checkpoint_blocking(args.runs)
    for key, samples in blocking.items():
        summary[f"checkpoint_{key}"] = summarise(samples)
    rows = [[key, s["median"], s["min"], s["max"], int(s["n"])] for key, s in summary.items()]
    print_table(
        f"trainer resize: 2 pods x 2 ranks, lighthouse heartbeat {args.heartbeat_ms} ms (seconds unless noted)",
        ["measure", "median", "min", "max", "n"],
        rows,
    )
    path = write_json("trainer_resize", {"runs": runs, "checkpoint": blocking, "summary": summary})
    print(f"results: {path}")
    s = summary
    print(
        f"shrink pause {s['shrink_pause']['median']:.2f} s (range {s['shrink_pause']['min']:.2f}-"
        f"{s['shrink_pause']['max']:.2f}), rolled back {s['rolled_back']['max']:.0f} steps, "
        f"heal {s['heal']['median'] * 1000:.0f} ms, survivors' heal stall {s['heal_stall']['median']:.2f} s, "
        f"joiner launch->commit {s['join_commit']['median']:.1f} s; Ray Train V2 restart pause "
        f"{s['v2_pause']['median']:.1f} s ({s['v2_pause']['median'] / s['shrink_pause']['median']:.0f}x); "
        f"checkpoint blocks "
        f"{s['checkpoint_sync']['median']:.2f} s sync vs {s['checkpoint_async']['median']:.2f} s async"
    )


if __name__ == "__main__":
    main()
