"""Compose parallelism onto any model as "a module and its blocks" (torchtitan's ``parallelize.py`` shape).

``parallelize(built, mesh, cfg)`` takes a :class:`~elastrain_trainer.models.BuiltModel` (or the
built-in GPT, whose blocks it knows) and applies, in order: the dtype the parameters are kept in
(``precision``), activation checkpointing, FSDP2 ``fully_shard`` per block and on the root over
the replica group's 1-D mesh with the mixed-precision policy (``precision``) and
``parallelism.reshardAfterForward``, then the blocks' all-gather prefetching (``overlap``). With
strategy ddp, forward autocasts to the compute dtype instead. The cross-group (torchft) reduction
is attached afterwards with :func:`set_cross_group_reduce`, so the model and this module know
nothing about torchft. A model built on the meta device stays there: the caller materialises the
shards afterwards (:func:`elastrain_trainer.models.materialize`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.models import GPT, BuiltModel
from elastrain_trainer.models.blocks import replace_submodule
from elastrain_trainer.overlap.prefetch import apply_prefetch
from elastrain_trainer.precision.autocast import apply_autocast
from elastrain_trainer.precision.policy import build_mixed_precision_policy, sharded_param_dtype

#: A cross-group gradient reduction: takes the group's reduced gradient shard and averages it
#: across replica groups in place, returning a work object to wait on (or None when done).
ReduceHook = Callable[[torch.Tensor], object | None]


def as_built(model: BuiltModel | GPT) -> BuiltModel:
    """The built-in GPT as a BuiltModel (its ``blocks`` list); a BuiltModel as it is."""
    if isinstance(model, BuiltModel):
        return model
    return BuiltModel(module=model, blocks=list(model.blocks), vocab_size=model.cfg.vocab_size)


def _is_attention(name: str, module: nn.Module) -> bool:
    return "attention" in type(module).__name__.lower() or name in ("attn", "self_attn", "attention")


def apply_ac(model: BuiltModel | GPT, mode: str) -> None:
    """Wrap blocks for activation recomputation: ``full`` the whole block, ``selective`` attention only.

    The wrapped block replaces the original in the module tree and in ``blocks`` (so FSDP shards it).
    """
    if mode == "none":
        return
    built = as_built(model)
    for index, block in enumerate(built.blocks):
        if mode == "full":
            wrapped = checkpoint_wrapper(block)
            replace_submodule(built.module, block, wrapped)
            built.blocks[index] = wrapped
            continue
        for name, child in list(block.named_children()):
            if _is_attention(name, child):
                block.register_module(name, checkpoint_wrapper(child))


def apply_fsdp(
    model: BuiltModel | GPT,
    mesh: DeviceMesh,
    *,
    reshard_after_forward: bool,
    mp_policy: MixedPrecisionPolicy | None = None,
) -> list[FSDPModule]:
    """Shard every block, then the root (embeddings, final norm, head) over ``mesh``; return the blocks.

    ``mp_policy`` (default: none, everything in the parameters' dtype) goes to every ``fully_shard``.
    """
    built = as_built(model)
    policy = mp_policy if mp_policy is not None else MixedPrecisionPolicy()
    blocks: list[FSDPModule] = []
    for block in built.blocks:
        blocks.append(fully_shard(block, mesh=mesh, reshard_after_forward=reshard_after_forward, mp_policy=policy))
    fully_shard(built.module, mesh=mesh, reshard_after_forward=reshard_after_forward, mp_policy=policy)
    return blocks


def parallelize(model: BuiltModel | GPT, mesh: DeviceMesh, cfg: TrainerConfig) -> nn.Module:
    """Apply precision, activation checkpointing, FSDP2 and prefetching (strategy fsdp) in place; return the module.

    With strategy ddp the model stays whole and forward autocasts to ``precision.dtype`` (fp32
    master weights) or the model is cast to it (no master weights); gradients are then averaged
    by the caller, in the parameters' dtype (``precision.reduceDtype`` is FSDP's reduce-scatter only).
    """
    built = as_built(model)
    built.module.to(sharded_param_dtype(cfg.precision))
    apply_ac(built, cfg.model.activation_checkpointing)
    if cfg.parallelism.strategy == "fsdp":
        blocks = apply_fsdp(
            built,
            mesh,
            reshard_after_forward=cfg.parallelism.reshard_after_forward,
            mp_policy=build_mixed_precision_policy(cfg.precision),
        )
        apply_prefetch(blocks, cfg.overlap)
    else:
        apply_autocast(built.module, cfg.precision, device_type=mesh.device_type)
    return built.module


def fsdp_modules(model: nn.Module) -> list[FSDPModule]:
    """Every FSDP2-sharded module of ``model`` (the blocks and the root)."""
    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def set_cross_group_reduce(model: nn.Module, reduce: ReduceHook) -> None:
    """Average each FSDP unit's reduce-scattered gradient across replica groups with ``reduce``.

    FSDP2 calls the hook after the in-group reduce-scatter, in ``precision.reduceDtype``; the hook
    must leave the cross-group average in the tensor, so an asynchronous result is waited for here.
    """

    def hook(output: torch.Tensor) -> None:
        work = reduce(output)
        if work is not None:
            work.wait()  # type: ignore[attr-defined]

    for module in fsdp_modules(model):
        module.set_all_reduce_hook(hook)
