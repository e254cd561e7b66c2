"""The elastic tax: what an elastrain step costs against the plain PyTorch loop a user would run instead.

    make bench BENCH=elastic_tax [ARGS='--quick']

The same GPT (vocab 4096, 4 layers, dim 256, 8 heads, seq 128), global batch 16, AdamW, synthetic
tokens and one thread per process, at 1 and 2 processes, under:
  ddp          plain DistributedDataParallel over gloo (torch.multiprocessing, one script)
  fsdp         plain FSDP2: ``fully_shard`` on every block, then the root (the torchrun loop)
  1 group x N  elastrain: one replica group of N ranks (FSDP2 inside, torchft across: a quorum of 1)
  N groups x 1 elastrain: N replica groups of one rank each (torchft's cross-group reduction)
               behind backward (overlap.asyncReduce, the default), and again with asyncReduce false
A variant's step time is the median interval between steady steps (the first ``--warmup`` steps of
every run are dropped): for elastrain, between committed steps as the driver sees them, so the
quorum, the driver's dispatch and the ledger are in it. The tax of a variant is its step over the
plain DDP step at the same process count.

The machine is shared and loaded, so the variants run interleaved, ``--rounds`` times in turn, and
every number is a median over all rounds. elastrain's per-phase breakdown (medians of the ranks'
slowest, from ``StepMetrics.phases``): data, forward+backward (with the reductions it hides),
exposed cross-group reduce (waited for after backward), all of the cross-group reduce (hidden or
not), commit (``should_commit``), optimizer,
and the driver's share of the interval (quorum, dispatch, ledger: interval minus the rank step).
"""

from __future__ import annotations

import argparse
import itertools
import os
import queue
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("RUST_LOG", "warn")

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.data import build_samples
from elastrain_trainer.driver import Driver, DriverOptions
from elastrain_trainer.localmode import LocalCluster
from elastrain_trainer.metrics import StepMetrics
from elastrain_trainer.models import build_built_model
from elastrain_trainer.optim import build_optimizer
from report import print_table, summarise, write_json

MODEL = {"vocabSize": 4096, "numLayers": 4, "numHeads": 8, "dim": 256, "seqLen": 128}
GLOBAL_BATCH = 16
#: Phases the ranks report (``StepResult.extra``), in step order.
PHASES = ("data", "forward_backward", "reduce_exposed", "reduce_total", "commit", "optimizer")


def config(steps: int, overlap: dict[str, Any] | None = None) -> TrainerConfig:
    return TrainerConfig.model_validate(
        {
            "model": MODEL,
            "data": {"syntheticTokens": (steps + 2) * GLOBAL_BATCH * (MODEL["seqLen"] + 1) * 2, "numShards": 64},
            "steps": steps,
            "globalBatchSize": GLOBAL_BATCH,
            "lrSchedule": {"warmupSteps": 1},
            "seed": 0,
            **({"overlap": overlap} if overlap else {}),
        }
    )


# -- plain PyTorch ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlainJob:
    kind: str
    """ddp or fsdp"""
    world: int
    steps: int
    rdzv: str
    """The file of the process group's rendezvous."""


def _plain_rank(rank: int, job: PlainJob, out: Any) -> None:
    """One process of the plain loop: what a torchrun user writes, with the trainer's model and data."""
    kind, world, steps, rdzv = job.kind, job.world, job.steps, job.rdzv
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rdzv}", rank=rank, world_size=world)
    cfg = config(steps)
    built = build_built_model(cfg)
    torch.manual_seed(0)
    model: torch.nn.Module
    if kind == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(built.module)
    else:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (world,))
        for block in built.blocks:
            fully_shard(block, mesh=mesh)
        model = fully_shard(built.module, mesh=mesh)
    optimizer = build_optimizer(model.parameters(), cfg.optimizer)
    samples = build_samples(cfg.data, cfg.model, seed=cfg.seed)
    per_rank = GLOBAL_BATCH // world
    times = []
    for step in range(steps):
        start = time.perf_counter()
        first = step * GLOBAL_BATCH + rank * per_rank
        inputs, targets = samples.batch(range(first, first + per_rank))
        loss = built.loss(built.forward(model, inputs), targets) / targets.numel()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    if rank == 0:
        out.put(times)
    dist.destroy_process_group()


def run_plain(kind: str, world: int, steps: int) -> list[float]:
    """Per-step seconds of rank 0 of a plain ``kind`` (ddp, fsdp) loop over ``world`` processes."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    job = PlainJob(kind=kind, world=world, steps=steps, rdzv=tempfile.mktemp(prefix="elastic-tax-rdzv-"))
    procs = [ctx.Process(target=_plain_rank, args=(r, job, out)) for r in range(world)]
    for proc in procs:
        proc.start()
    while True:
        try:
            times: list[float] = out.get(timeout=5)
            break
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in procs):
                for proc in procs:
                    proc.kill()
                raise RuntimeError(f"plain {kind} x{world}: exit codes {[p.exitcode for p in procs]}") from None
    for proc in procs:
        proc.join()
    if any(p.exitcode for p in procs):
        raise RuntimeError(f"plain {kind} x{world}: exit codes {[p.exitcode for p in procs]}")
    return times


# -- elastrain ------------------------------------------------------------------------------------


def run_elastrain(groups: int, ranks: int, steps: int, overlap: dict[str, Any] | None) -> list[StepMetrics]:
    """Committed steps' metrics of a local elastrain run of ``groups`` pods x ``ranks`` ranks."""
    cluster = LocalCluster(pods=groups, ranks_per_pod=ranks)
    driver: Driver | None = None
    try:
        driver = Driver(config(steps, overlap), DriverOptions(start_groups=groups, step_timeout_seconds=600))
        result = driver.run()
    finally:
        if driver is not None:
            driver.shutdown()
        cluster.shutdown()
    committed = [m for m in result.metrics if m.committed]
    if result.step != steps or any(m.groups != groups for m in committed):
        shape = [m.groups for m in committed]
        raise RuntimeError(f"elastrain {groups}x{ranks}: step {result.step}/{steps}, groups per step {shape}")
    return committed


def intervals(committed: list[StepMetrics]) -> list[float]:
    return [b.wall_time - a.wall_time for a, b in itertools.pairwise(committed)]


# -- the table ------------------------------------------------------------------------------------


def variants(processes: list[int]) -> list[tuple[str, int, str, int, int]]:
    """(label, processes, kind, groups, ranks per group) of every variant, in the order they run."""
    out: list[tuple[str, int, str, int, int]] = []
    for n in processes:
        out += [(f"plain DDP x {n}", n, "ddp", 0, 0), (f"plain FSDP2 x {n}", n, "fsdp", 0, 0)]
        out.append((f"elastrain 1 group x {n}", n, "elastrain", 1, n))
        if n > 1:
            out.append((f"elastrain {n} groups x 1", n, "elastrain", n, 1))
            out.append((f"elastrain {n} groups x 1, asyncReduce false", n, "elastrain_sync", n, 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 steps, 1 round (a smoke run, noisy)")
    parser.add_argument("--steps", type=int, default=30, help="steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="steps dropped at the start of every run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of all variants")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--async-reduce", choices=["true", "false"], default=None, help="elastrain overlap.asyncReduce")
    parser.add_argument("--bucket-mb", type=float, default=None, help="elastrain overlap.bucketSizeMB")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup, args.rounds = 8, 3, 1
    overlap: dict[str, Any] = {}
    if args.async_reduce is not None:
        overlap["asyncReduce"] = args.async_reduce == "true"
    if args.bucket_mb is not None:
        overlap["bucketSizeMB"] = args.bucket_mb
    plan = variants(args.processes)
    steps: dict[str, list[float]] = {label: [] for label, *_ in plan}
    phases: dict[str, dict[str, list[float]]] = {label: {} for label, *_ in plan}
    began = time.monotonic()
    for round_index in range(args.rounds):
        for label, n, kind, groups, ranks in plan:
            elapsed = time.monotonic() - began
            print(f"[{elapsed:6.0f} s] round {round_index + 1}/{args.rounds}: {label} ...", file=sys.stderr, flush=True)
            if kind.startswith("elastrain"):
                sync = {**overlap, "asyncReduce": False} if kind == "elastrain_sync" else overlap
                committed = run_elastrain(groups, ranks, args.steps, sync or None)
                steady = committed[args.warmup :]
                gaps = intervals(steady)
                steps[label] += gaps
                for gap, m in zip(gaps, steady[1:], strict=True):
                    for name, value in {**m.phases, "driver": gap - m.step_seconds}.items():
                        phases[label].setdefault(name, []).append(value)
            else:
                steps[label] += run_plain(kind, n, args.steps)[args.warmup :]
            print(f"    median step {statistics.median(steps[label]):.3f} s so far", file=sys.stderr, flush=True)
    baseline = {n: statistics.median(steps[label]) for label, n, kind, *_ in plan if kind == "ddp"}
    header = ["setup", "procs", "step s", "vs DDP", *[f"{p} s" for p in (*PHASES, "driver")]]
    rows: list[list[Any]] = []
    for label, n, _kind, *_ in plan:
        median = statistics.median(steps[label])
        cells = [
            f"{statistics.median(phases[label][p]):.3f}" if phases[label].get(p) else "-" for p in (*PHASES, "driver")
        ]
        rows.append([label, n, f"{median:.3f}", f"{median / baseline[n]:.3f}", *cells])
    print_table(
        f"Elastic tax: GPT {MODEL}, batch {GLOBAL_BATCH}, AdamW, {args.steps} steps x {args.rounds} rounds "
        f"(interleaved), medians after {args.warmup} warm-up steps; overlap {overlap or 'default'}",
        header,
        rows,
    )
    path = write_json(
        "elastic_tax",
        {
            "model": MODEL,
            "global_batch": GLOBAL_BATCH,
            "args": vars(args),
            "step_seconds": {label: summarise(v) for label, v in steps.items()},
            "ratio_vs_ddp": {label: statistics.median(steps[label]) / baseline[n] for label, n, *_ in plan},
            "phases": {label: {p: summarise(v) for p, v in ph.items()} for label, ph in phases.items()},
        },
    )
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
