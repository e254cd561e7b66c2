"""Parallelism applied to a plain model from outside: FSDP2 inside a replica group, activation checkpointing."""

from elastrain_trainer.parallel.apply import (
    ReduceHook,
    apply_ac,
    apply_fsdp,
    fsdp_modules,
    parallelize,
    set_cross_group_reduce,
)

__all__ = ["ReduceHook", "apply_ac", "apply_fsdp", "fsdp_modules", "parallelize", "set_cross_group_reduce"]
