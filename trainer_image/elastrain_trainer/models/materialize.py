"""Giving a sharded meta model its storage: ``to_empty``, the source's init from the seed, then pretrained weights.

Called after :func:`elastrain_trainer.parallel.parallelize`, so each rank allocates only its own
shards. The initial weights do not depend on the world size: the model is initialised one unit at a
time (each block, then the root's own modules) on full-size CPU tensors, every submodule under its
own seed (the job's seed and the submodule's name), and each rank keeps the slice its shards hold.
So 1, 2 or 4 ranks, FSDP or DDP, with or without activation checkpointing, start from the same
weights, and no rank ever holds more than one block in full. The price: every rank draws every
unit's random numbers (CPU time of the whole model's init on each rank, once per job start). When
pretrained weights follow, only the submodules holding buffers (rotary tables) are initialised.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import ActivationWrapper
from torch.distributed.tensor import DTensor, distribute_tensor

from elastrain_trainer.models.built import BuiltModel, InitFn
from elastrain_trainer.models.pretrained import load_pretrained

#: The name part activation checkpointing adds (dropped, so the seeds do not depend on it).
WRAPPED = "_checkpoint_wrapped_module"


def unwrapped_name(name: str) -> str:
    """A submodule's name as it would be without activation checkpointing."""
    return ".".join(part for part in name.split(".") if part != WRAPPED)


def module_seed(seed: int, name: str) -> int:
    """The seed of one submodule's init: a hash of the job's seed and the submodule's (unwrapped) name."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def init_units(root: nn.Module, blocks: list[nn.Module]) -> list[list[tuple[str, nn.Module]]]:
    """The init units: each block's submodules, then the root's outside the blocks; each innermost first.

    Names are the submodules' names in ``root`` without activation checkpointing's infix.
    """
    names = {id(m): unwrapped_name(n) for n, m in root.named_modules()}
    block_ids = {id(b) for b in blocks}
    units: list[list[tuple[str, nn.Module]]] = []
    for block in blocks:
        units.append([(names[id(m)], m) for m in block.modules()])
    outside: list[tuple[str, nn.Module]] = []
    stack: list[nn.Module] = [root]
    while stack:  # pre-order without descending into blocks
        module = stack.pop()
        outside.append((names[id(module)], module))
        stack.extend(reversed([c for c in module.children() if id(c) not in block_ids]))
    units.append(outside)
    return [[(n, m) for n, m in reversed(unit) if not isinstance(m, ActivationWrapper)] for unit in units]


@contextmanager
def full_parameters(modules: list[nn.Module]) -> Iterator[None]:
    """Give ``modules``' own parameters full-size CPU storage for the block; then copy each rank's slice back.

    A sharded parameter (DTensor) keeps the slice of the full tensor its placements name, a
    replicated one the whole tensor. A parameter shared by two modules (tied) gets one full tensor.
    """
    swapped: dict[int, tuple[nn.Parameter, nn.Parameter]] = {}
    owners: list[tuple[nn.Module, str, nn.Parameter]] = []
    for module in modules:
        for name, param in list(module._parameters.items()):
            if param is None:
                continue
            if id(param) not in swapped:
                full = nn.Parameter(torch.empty(param.shape, dtype=param.dtype, device="cpu"), param.requires_grad)
                swapped[id(param)] = (param, full)
            owners.append((module, name, param))
            module._parameters[name] = swapped[id(param)][1]
    try:
        yield
    finally:
        for module, name, param in owners:
            module._parameters[name] = param
    with torch.no_grad():
        for param, full in swapped.values():
            if isinstance(param, DTensor):
                local = distribute_tensor(full.data, param.device_mesh, param.placements, src_data_rank=None)
                param.to_local().copy_(local.to_local())
            else:
                param.copy_(full.data)


def initialize(built: BuiltModel, init: InitFn, *, seed: int, buffers_only: bool = False) -> None:
    """Initialise a materialised (``to_empty``) model unit by unit, each submodule from its own seed.

    ``buffers_only``: initialise only the submodules that hold buffers (rotary tables), for a model
    whose parameters all come from pretrained weights next; the rest is never computed.
    """
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        for unit in init_units(built.module, built.blocks):
            chosen = [(n, m) for n, m in unit if not buffers_only or any(b is not None for b in m._buffers.values())]
            with full_parameters([m for _, m in chosen]):
                for name, module in chosen:
                    torch.manual_seed(module_seed(seed, name))
                    init(module)


def shared_parameters(module: nn.Module) -> list[list[tuple[nn.Module, str]]]:
    """The owners (module, name) of each parameter held by more than one module (tied weights)."""
    owners: dict[int, list[tuple[nn.Module, str]]] = {}
    for sub in module.modules():
        for name, param in sub._parameters.items():
            if param is not None:
                owners.setdefault(id(param), []).append((sub, name))
    return [group for group in owners.values() if len(group) > 1]


def empty_on_cpu(module: nn.Module) -> None:
    """``to_empty(device="cpu")`` keeping tied weights tied (a whole, unsharded module's ties break in it)."""
    shared = shared_parameters(module)
    module.to_empty(device="cpu")
    for (first, first_name), *others in shared:
        for owner, name in others:
            owner._parameters[name] = first._parameters[first_name]


def materialize(built: BuiltModel, *, seed: int, process_group: dist.ProcessGroup | None = None) -> None:
    """Allocate and initialise a meta model's shards in place; load ``built.pretrained`` if set."""
    if built.on_meta:
        if built.init is None:
            raise ValueError("a model built on the meta device needs an init function")
        empty_on_cpu(built.module)
        # Pretrained weights overwrite every parameter (load_pretrained refuses files that lack one).
        initialize(built, built.init, seed=seed, buffers_only=built.pretrained is not None)
    if built.pretrained is not None:
        load_pretrained(built.module, built.pretrained, process_group=process_group)
