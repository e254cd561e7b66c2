"""Giving a sharded meta model its storage: ``to_empty``, the source's init from the seed, then pretrained weights.

Called after :func:`elastrain_trainer.parallel.parallelize`, so each rank allocates and fills only
its own shards. The init runs under a fixed seed, so replica groups of the same size start
bit-identical (a joining group heals from a peer anyway).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from elastrain_trainer.models.built import BuiltModel
from elastrain_trainer.models.pretrained import load_pretrained


def materialize(built: BuiltModel, *, seed: int, process_group: dist.ProcessGroup | None = None) -> None:
    """Allocate and initialise a meta model's shards in place; load ``built.pretrained`` if set."""
    if built.on_meta:
        if built.init is None:
            raise ValueError("a model built on the meta device needs an init function")
        built.module.to_empty(device="cpu")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            built.init(built.module)
    if built.pretrained is not None:
        load_pretrained(built.module, built.pretrained, process_group=process_group)
