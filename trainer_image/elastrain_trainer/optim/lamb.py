"""LAMB (You et al., 2019): Adam's update rescaled per parameter by a trust ratio ||w|| / ||update||.

Written here rather than taken from a package: torch ships no LAMB; timm's ``Lamb`` would pull
timm and torchvision into the trainer image for one class, and computes each norm with a
separate call, which under FSDP2 (DTensor parameters) becomes one all-reduce per parameter.
This one updates the local shards with foreach kernels and computes all trust-ratio norms with
:func:`~elastrain_trainer.optim.norms.compute_norms`: one all-reduce per shard group per step,
over the full (unsharded) parameter, so sharded training matches single-process training.

State per parameter is Adam's (``step``, ``exp_avg``, ``exp_avg_sq``), shaped like the
parameter (DTensors under FSDP2), so torch.distributed.checkpoint reshards it like Adam's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from elastrain_trainer.optim.norms import compute_norms, local_tensor


class Lamb(torch.optim.Optimizer):
    """LAMB with decoupled weight decay and bias correction; trust ratio 1 where a norm is zero."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        *,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0.0:
            raise ValueError(f"Lamb lr must be positive, got {lr}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Lamb betas must lie in [0, 1), got {betas}")
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    def _init_state(self, param: torch.Tensor) -> dict[str, Any]:
        state: dict[str, Any] = self.state[param]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            beta1, beta2 = group["betas"]
            states = [self._init_state(p) for p in params]
            for state in states:
                state["step"] += 1
            # Every parameter of a group steps together, so one step count serves all of them.
            step = float(states[0]["step"])
            exp_avgs = [local_tensor(s["exp_avg"]) for s in states]
            exp_avg_sqs = [local_tensor(s["exp_avg_sq"]) for s in states]
            grads = [local_tensor(p.grad) for p in params if p.grad is not None]
            weights = [local_tensor(p) for p in params]

            torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)
            bias1 = 1.0 - beta1**step
            bias2 = 1.0 - beta2**step
            denom = torch._foreach_sqrt(exp_avg_sqs)
            torch._foreach_div_(denom, bias2**0.5)
            torch._foreach_add_(denom, group["eps"])
            updates = torch._foreach_div(exp_avgs, denom)
            torch._foreach_div_(updates, bias1)
            if group["weight_decay"] != 0.0:
                torch._foreach_add_(updates, weights, alpha=group["weight_decay"])

            # Norms of the full parameters and updates: reduce over shards (DTensor parameters).
            update_views = [_like(p, u) for p, u in zip(params, updates, strict=True)]
            norms = compute_norms([*params, *update_views])
            weight_norms = torch.stack(norms[: len(params)])
            update_norms = torch.stack(norms[len(params) :])
            trust = torch.where(
                (weight_norms > 0) & (update_norms > 0), weight_norms / update_norms, torch.ones_like(weight_norms)
            )
            for update, scale in zip(updates, (trust * -group["lr"]).unbind(0), strict=True):
                update.mul_(scale.to(update.dtype))
            torch._foreach_add_(weights, updates)
        return loss


def _like(param: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
    """Wrap a local tensor with the parameter's DTensor layout, so its norm is reduced like the parameter's."""
    from torch.distributed.tensor import DTensor

    if isinstance(param, DTensor):
        return DTensor.from_local(
            local, param.device_mesh, param.placements, run_check=False, shape=param.shape, stride=param.stride()
        )
    return local
