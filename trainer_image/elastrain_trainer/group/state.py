"""A rank's training state as plain local tensors, for torchft's live healing over HTTP.

torchft reads ``live_state`` from its own thread; FSDP2 swaps unsharded parameters into the
modules during forward and backward, so the sharded parameters are captured right after
``fully_shard`` and always served from those references. Only this rank's shards travel: a healing
rank r receives from rank r of a live peer group (same ranks per pod), and copies in place.
With fp16 loss scaling the scaler's state (scale, growth tracker) travels too: every group must
scale its gradients alike before the cross-group average, so a healed group continues with the
scale of its peers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import _init_optim_state
from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler
from torch.distributed.tensor import DTensor


def _local(value: Any) -> Any:
    if isinstance(value, DTensor):
        return value.to_local().detach().clone()
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    return value


def _copy_into(target: Any, value: Any) -> Any:
    if isinstance(target, DTensor):
        target.to_local().copy_(value)
        return target
    if isinstance(target, torch.Tensor) and isinstance(value, torch.Tensor) and target.shape == value.shape:
        target.copy_(value)
        return target
    return value


class LiveState:
    """Serves and restores model, optimizer, scheduler (and loss scaler) state from captured sharded parameters."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        *,
        scaler: ShardedGradScaler | None = None,
    ) -> None:
        self.params: dict[str, nn.Parameter] = dict(model.named_parameters())
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = scaler

    def live_state(self) -> dict[str, Any]:
        names = {id(p): name for name, p in self.params.items()}
        optim_state = {
            names[id(p)]: {k: _local(v) for k, v in state.items()}
            for p, state in self.optimizer.state.items()
            if id(p) in names
        }
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
        state = {
            "model": {name: _local(p) for name, p in self.params.items()},
            "optimizer": {"state": optim_state, "param_groups": groups},
            "scheduler": self.scheduler.state_dict(),
        }
        if self.scaler is not None:
            state["grad_scaler"] = self.scaler.state_dict()
        return state

    @torch.no_grad()
    def load_live_state(self, state: dict[str, Any]) -> None:
        for name, value in state["model"].items():
            _copy_into(self.params[name], value)
        if state["optimizer"]["state"] and not self.optimizer.state:
            _init_optim_state(self.optimizer)
        for name, saved in state["optimizer"]["state"].items():
            own = self.optimizer.state[self.params[name]]
            for key, value in saved.items():
                own[key] = _copy_into(own.get(key), value)
        for group, saved_group in zip(self.optimizer.param_groups, state["optimizer"]["param_groups"], strict=True):
            group.update(saved_group)
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and "grad_scaler" in state:
            self.scaler.load_state_dict(state["grad_scaler"])
