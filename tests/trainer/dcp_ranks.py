"""Rank processes of the DCP resharding test (imports neither Ray nor pytest: spawned processes load this)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.nn import functional as F  # noqa: N812

from elastrain_trainer.checkpoint import TrainState, load_train_state, save_train_state
from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.data import build_samples
from elastrain_trainer.models import build_model
from elastrain_trainer.optim import build_lr_scheduler, build_optimizer
from elastrain_trainer.parallel import parallelize

CFG = TrainerConfig.model_validate(
    {
        "model": {"dim": 32, "numHeads": 2, "numLayers": 3, "seqLen": 16, "vocabSize": 62},
        "data": {"syntheticTokens": 1024, "numShards": 8},
        "steps": 6,
        "lrSchedule": {"warmupSteps": 2},
        "seed": 7,
    }
)


STEP = 5
MANAGER_STATE = {"step": STEP, "batches_committed": 9}


def _build(world: int) -> TrainState:
    cfg = CFG
    mesh = init_device_mesh("cpu", (world,))
    model = parallelize(build_model(cfg.model, seed=cfg.seed + world), mesh, cfg)  # differs per world size
    optimizer = build_optimizer(model.parameters(), cfg.optimizer)
    return TrainState(model, optimizer, build_lr_scheduler(optimizer, cfg.lr_schedule, total_steps=cfg.steps))


def _full(state: TrainState) -> dict[str, Any]:
    model_sd, optim_sd = get_state_dict(
        state.model, state.optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    return {"model": model_sd, "optimizer": optim_sd, "scheduler": state.scheduler.state_dict()}


def _rank(rank: int, world: int, rendezvous: str, path: str, out: str, save: bool) -> None:  # noqa: PLR0917
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        state = _build(world)
        if save:
            cfg = CFG
            samples = build_samples(cfg.data, cfg.model, seed=cfg.seed)
            for step in range(2):  # real steps, so Adam state and the schedule are not trivial
                inputs, targets = samples.batch(range(4 * rank + step, 4 * rank + step + 2))
                F.cross_entropy(state.model(inputs % 62).flatten(0, 1), targets.flatten() % 62).backward()
                state.optimizer.step()
                state.scheduler.step()
                state.optimizer.zero_grad()
            expected = _full(state)
            future = save_train_state(
                state, Path(path), step=STEP, manager_state=MANAGER_STATE, process_group=None, use_async=True
            )
            assert future is not None
            with torch.no_grad():  # training goes on while the save is written: it must not leak in
                for param in state.model.parameters():
                    param.add_(1.0)
            future.result()
            dist.barrier()
            if rank == 0:
                torch.save(expected, out + ".expected")
            state = _build(world)  # a fresh model at the same size: "load at 4 again"
        meta = load_train_state(state, Path(path), process_group=None)
        got = _full(state)
        if rank == 0:
            torch.save({**got, "meta": meta}, out + f".loaded{world}")
    finally:
        dist.destroy_process_group()


def spawn(world: int, path: Path, out: Path, *, save: bool) -> None:
    # A file rendezvous, new for each run (a FileStore file must not exist yet): no TCP port to race for.
    rendezvous = Path(tempfile.mkdtemp(dir=path.parent, prefix="rendezvous-")) / "store"
    args = (world, str(rendezvous), str(path), str(out), save)
    mp.start_processes(_rank, args=args, nprocs=world, start_method="spawn")
