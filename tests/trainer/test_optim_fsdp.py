"""Every optimizer and schedule on FSDP2-sharded parameters (2 gloo ranks) against one process.

One spawned run trains a tiny MLP with each optimizer (each paired with a schedule) for STEPS
steps, checkpoints it with torch.distributed.checkpoint after RESUME_AT steps, and returns the
final full parameters. The test then trains the same model in this process (the reference) and
resumes each checkpoint at world size 1, which must land on the same parameters.

Tolerance: rtol 1e-5, atol 1e-6 (fp32; only the reduction order of the sharded run differs).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from elastrain_trainer.config.optim import OptimizerConfig
from elastrain_trainer.config.schedule import LrScheduleConfig
from elastrain_trainer.optim import build_lr_scheduler, build_optimizer, compute_norms

STEPS = 6
RESUME_AT = 3
BATCH = 8
WORLD = 2
RTOL, ATOL = 1e-5, 1e-6

#: Each optimizer with a schedule, so that every schedule also runs sharded and through a checkpoint.
CASES: dict[str, tuple[OptimizerConfig, LrScheduleConfig]] = {
    "adamw": (OptimizerConfig(name="adamw", lr=0.05), LrScheduleConfig(name="warmup_cosine", warmup_steps=2)),
    "adam": (OptimizerConfig(name="adam", lr=0.05), LrScheduleConfig(name="polynomial", warmup_steps=1, power=2.0)),
    "lamb": (
        OptimizerConfig(name="lamb", lr=0.05, weight_decay=0.1),
        LrScheduleConfig(name="cosine_restarts", warmup_steps=1, restart_period_steps=2, restart_multiplier=2),
    ),
    "sgd": (
        OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True),
        LrScheduleConfig(name="exponential", warmup_steps=0, gamma=0.8),
    ),
    "adagrad": (OptimizerConfig(name="adagrad", lr=0.1), LrScheduleConfig(name="constant", warmup_steps=0)),
    "rmsprop": (OptimizerConfig(name="rmsprop", lr=0.01, momentum=0.5), LrScheduleConfig(warmup_steps=2)),
}


def _model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    # 7 and 5 rows do not split evenly over 2 ranks: uneven shards must not change norms or updates.
    return torch.nn.Sequential(torch.nn.Linear(6, 7), torch.nn.Tanh(), torch.nn.Linear(7, 5), torch.nn.Linear(5, 3))


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1000 + step)
    return torch.randn(BATCH, 6, generator=generator), torch.randn(BATCH, 3, generator=generator)


def _train_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: object, step: int, shard: slice
) -> None:
    inputs, targets = _batch(step)
    loss = torch.nn.functional.mse_loss(model(inputs[shard]), targets[shard])
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    scheduler.step()  # type: ignore[attr-defined]


def _worker(rank: int, out: str) -> None:
    torch.set_num_threads(1)
    # A file rendezvous in the run's own directory: no TCP port to reserve and lose to another socket.
    dist.init_process_group("gloo", init_method=f"file://{out}/rendezvous", rank=rank, world_size=WORLD)
    mesh = init_device_mesh("cpu", (WORLD,))
    shard = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
    results: dict[str, dict[str, torch.Tensor]] = {}
    for name, (optim_cfg, schedule_cfg) in CASES.items():
        model = _model()
        for layer in model:
            if isinstance(layer, torch.nn.Linear):
                fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        optimizer = build_optimizer(model.parameters(), optim_cfg)
        scheduler = build_lr_scheduler(optimizer, schedule_cfg, total_steps=STEPS)
        for step in range(STEPS):
            if step == RESUME_AT:
                model_state, optim_state = get_state_dict(model, optimizer)
                state = {"model": model_state, "optim": optim_state, "schedule": scheduler.state_dict()}
                dcp.save(state, checkpoint_id=str(Path(out) / name))
            _train_step(model, optimizer, scheduler, step, shard)
        results[name] = {fqn: p.full_tensor().detach() for fqn, p in model.named_parameters()}
    # compute_norms on sharded parameters equals the norm of the full parameters.
    params = list(model.parameters())
    results["norms"] = {"sharded": torch.stack(compute_norms(params))}
    results["norms"]["full"] = torch.stack([p.full_tensor().norm() for p in params])
    if rank == 0:
        torch.save(results, Path(out) / "results.pt")
    # Leave together: a rank tearing gloo down while a peer still talks to it aborts the peer.
    dist.barrier()
    dist.destroy_process_group()


def _reference(name: str, *, resume_from: Path | None) -> dict[str, torch.Tensor]:
    optim_cfg, schedule_cfg = CASES[name]
    model = _model()
    optimizer = build_optimizer(model.parameters(), optim_cfg)
    scheduler = build_lr_scheduler(optimizer, schedule_cfg, total_steps=STEPS)
    first = 0
    if resume_from is not None:
        model_state, optim_state = get_state_dict(model, optimizer)
        state = {"model": model_state, "optim": optim_state, "schedule": scheduler.state_dict()}
        dcp.load(state, checkpoint_id=str(resume_from))
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
        scheduler.load_state_dict(state["schedule"])
        first = RESUME_AT
    for step in range(first, STEPS):
        _train_step(model, optimizer, scheduler, step, slice(None))
    return {fqn: p.detach() for fqn, p in model.named_parameters()}


# Loading the 2-rank checkpoint in this (non-distributed) process is the point; DCP warns about it.
@pytest.mark.filterwarnings("ignore:torch.distributed is disabled:UserWarning")
def test_sharded_training_and_resharded_resume_match_single_process(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=WORLD)
    results = torch.load(tmp_path / "results.pt")
    torch.testing.assert_close(results["norms"]["sharded"], results["norms"]["full"], rtol=RTOL, atol=ATOL)
    initial = dict(_model().named_parameters())
    for name in CASES:
        reference = _reference(name, resume_from=None)
        resumed = _reference(name, resume_from=tmp_path / name)
        for fqn, want in reference.items():
            assert not torch.allclose(want, initial[fqn]), f"{name}: {fqn} did not train"
            torch.testing.assert_close(results[name][fqn], want, rtol=RTOL, atol=ATOL, msg=f"{name} sharded {fqn}")
            torch.testing.assert_close(resumed[fqn], want, rtol=RTOL, atol=ATOL, msg=f"{name} resumed {fqn}")
