"""Compose parallelism onto a :class:`~elastrain_trainer.models.GPT` (torchtitan's ``parallelize.py`` shape).

``parallelize(model, mesh, cfg)`` applies activation checkpointing, then FSDP2 ``fully_shard`` per
block and on the root over the replica group's 1-D mesh. The cross-group (torchft) reduction is
attached afterwards with :func:`set_cross_group_reduce`, so the model and this module know nothing
about torchft.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, fully_shard

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.models import GPT

#: A cross-group gradient reduction: takes the group's reduced gradient shard and averages it
#: across replica groups in place, returning a work object to wait on (or None when done).
ReduceHook = Callable[[torch.Tensor], object | None]


def apply_ac(model: GPT, mode: str) -> None:
    """Wrap blocks for activation recomputation: ``full`` the whole block, ``selective`` attention only."""
    if mode == "none":
        return
    for index, block in enumerate(model.blocks):
        if mode == "full":
            model.blocks[index] = checkpoint_wrapper(block)
        else:
            block.attn = checkpoint_wrapper(block.attn)  # type: ignore[arg-type]


def apply_fsdp(model: GPT, mesh: DeviceMesh, *, reshard_after_forward: bool) -> None:
    """Shard every block, then the root (embedding, final norm, head) over ``mesh``."""
    for block in model.blocks:
        fully_shard(block, mesh=mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard_after_forward)


def parallelize(model: GPT, mesh: DeviceMesh, cfg: TrainerConfig) -> GPT:
    """Apply activation checkpointing and FSDP2 (strategy fsdp) to ``model`` in place and return it.

    With strategy ddp the model stays whole; gradients are then averaged by the caller.
    """
    apply_ac(model, cfg.model.activation_checkpointing)
    if cfg.parallelism.strategy == "fsdp":
        apply_fsdp(model, mesh, reshard_after_forward=cfg.parallelism.reshard_after_forward)
    return model


def fsdp_modules(model: nn.Module) -> list[FSDPModule]:
    """Every FSDP2-sharded module of ``model`` (the blocks and the root)."""
    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def set_cross_group_reduce(model: nn.Module, reduce: ReduceHook) -> None:
    """Average each FSDP unit's reduce-scattered gradient across replica groups with ``reduce``.

    FSDP2 calls the hook after the in-group reduce-scatter; the hook must leave the cross-group
    average in the tensor, so an asynchronous result is waited for here.
    """

    def hook(output: torch.Tensor) -> None:
        work = reduce(output)
        if work is not None:
            work.wait()  # type: ignore[attr-defined]

    for module in fsdp_modules(model):
        module.set_all_reduce_hook(hook)
