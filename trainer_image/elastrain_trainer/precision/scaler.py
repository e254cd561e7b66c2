"""Loss scaling for fp16 on sharded gradients: torch's ``ShardedGradScaler``, which works with FSDP2.

``ShardedGradScaler`` checks every local gradient shard for inf/nan and all-reduces the verdict
over its process group, so all ranks skip the same steps. Pass the group whose ranks must agree:
the whole world, or the pod when each pod decides on its own (the cross-pod reduction already
propagates an inf to every pod).

A replica group that decides itself whether a step commits (torchft) splits torch's
``step``/``update`` in two: :func:`unscale_and_check` before the vote, then either
``scaler.step(optimizer); scaler.update()`` (committed), ``scaler.update()`` alone (an overflow:
back off), or :func:`keep_scale` (a step that failed for another reason must not move the scale).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

from elastrain_trainer.config.precision import PrecisionConfig

#: Growth interval of a static scale: never grow.
NEVER = 2**31 - 1


class StaticShardedGradScaler(ShardedGradScaler):
    """A scaler whose scale never changes; steps with inf/nan gradients are still skipped."""

    def __init__(self, scale: float, *, process_group: dist.ProcessGroup | None) -> None:
        super().__init__(device="cpu", init_scale=scale, growth_interval=NEVER, process_group=process_group)
        self.static_scale = scale

    def update(self, new_scale: float | torch.Tensor | None = None) -> None:
        super().update(self.static_scale if new_scale is None else new_scale)


def build_grad_scaler(
    cfg: PrecisionConfig, *, process_group: dist.ProcessGroup | None = None, device: str = "cpu"
) -> ShardedGradScaler | None:
    """Return the gradient scaler for fp16 training, or None when no loss scaling is needed.

    Use it as ``scaler.scale(loss).backward(); scaler.unscale_(opt); clip; scaler.step(opt); scaler.update()``.
    """
    if cfg.dtype != "fp16" or cfg.loss_scaling.mode == "none":
        return None
    group = process_group if process_group is not None else dist.group.WORLD
    scaling = cfg.loss_scaling
    if scaling.mode == "static":
        return StaticShardedGradScaler(scaling.static_scale, process_group=group)
    return ShardedGradScaler(
        device=device,
        init_scale=scaling.init_scale,
        growth_factor=scaling.growth_factor,
        backoff_factor=scaling.backoff_factor,
        growth_interval=scaling.growth_interval,
        process_group=group,
    )


def unscale_and_check(scaler: ShardedGradScaler, optimizer: torch.optim.Optimizer) -> bool:
    """Unscale ``optimizer``'s gradients in place; True when any rank of the scaler's group saw inf/nan.

    ``unscale_`` all-reduces the verdict over the scaler's process group, so every rank returns
    the same answer; call it on every rank, once per step, after the gradients are reduced.
    """
    scaler.unscale_(optimizer)
    found: dict[Any, torch.Tensor] = scaler._found_inf_per_device(optimizer)
    return any(bool(f.item()) for f in found.values())


def keep_scale(scaler: ShardedGradScaler) -> None:
    """End the step without changing the scale or the growth tracker (forget its inf checks)."""
    scaler.update(float(scaler.get_scale()))
