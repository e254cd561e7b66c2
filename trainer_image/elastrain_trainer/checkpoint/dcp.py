"""Save and load one replica group's training state with DCP (sharded; reshards to any number of ranks).

The state is a fixed set of keys: ``model`` and ``optimizer`` (sharded state dicts from
``get_state_dict``), and ``meta`` (scheduler, step, manager state, RNG; pickled). The ledger is
written by the driver next to it (:class:`~elastrain_trainer.checkpoint.store.DriverRecord`).
"""

from __future__ import annotations

import base64
import pickle
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import async_save as dcp_async_save
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save
from torch.distributed.tensor import DTensor


@dataclass
class TrainState:
    """What a rank trains with; the model and optimizer are FSDP2-sharded."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any


def _meta(state: TrainState, *, step: int, manager_state: dict[str, int]) -> str:
    payload = {
        "step": step,
        "scheduler": state.scheduler.state_dict(),
        "manager": manager_state,
        "rng": torch.get_rng_state(),
    }
    return base64.b64encode(pickle.dumps(payload)).decode()


def save_train_state(
    state: TrainState,
    path: Path,
    *,
    step: int,
    manager_state: dict[str, int],
    process_group: dist.ProcessGroup | None,
    use_async: bool,
) -> Future[Any] | None:
    """Save to ``path``; with ``use_async`` return the future of the background write (state staged first)."""
    model_sd, optim_sd = get_state_dict(state.model, state.optimizer)
    payload = {"model": model_sd, "optimizer": optim_sd, "meta": _meta(state, step=step, manager_state=manager_state)}
    if use_async:
        future: Future[Any] = dcp_async_save(payload, checkpoint_id=str(path), process_group=process_group)  # type: ignore[assignment]
        return future
    dcp_save(payload, checkpoint_id=str(path), process_group=process_group)
    return None


def _local_bytes(value: Any) -> int:
    if isinstance(value, DTensor):
        value = value.to_local()
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_local_bytes(v) for v in value.values())
    return 0


def state_bytes(state: TrainState) -> int:
    """Bytes of this rank's shards of the model and optimizer state: its part of a checkpoint's data files."""
    return _local_bytes(state.model.state_dict()) + _local_bytes(state.optimizer.state)


def load_train_state(state: TrainState, path: Path, *, process_group: dist.ProcessGroup | None) -> dict[str, Any]:
    """Load into ``state`` (resharding to this run's ranks); returns step and manager state."""
    model_sd, optim_sd = get_state_dict(state.model, state.optimizer)
    payload: dict[str, Any] = {"model": model_sd, "optimizer": optim_sd, "meta": ""}
    dcp_load(payload, checkpoint_id=str(path), process_group=process_group)
    set_state_dict(
        state.model, state.optimizer, model_state_dict=payload["model"], optim_state_dict=payload["optimizer"]
    )
    meta: dict[str, Any] = pickle.loads(base64.b64decode(payload["meta"]))
    state.scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(meta["rng"])
    return {"step": meta["step"], "manager": meta["manager"]}
