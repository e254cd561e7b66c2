"""Plug a codec into FSDP2's cross-replica reduction (HSDP with a separate replicate group).

Each pod runs 1-D FSDP2 over its own ranks; FSDP2 reduce-scatters (averages) gradients inside
the pod, then calls the module's all-reduce hook with the flat reduce-scatter output. The hook
averages that shard across pods with the codec, over the group of ranks holding the same shard
index in every pod. Each FSDP module gets its own key, so error-feedback residuals line up, and
the matrix layout of its parameter shards, so PowerSGD compresses real matrices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor

from elastrain_trainer.compression.codec import Codec

Segments = list[tuple[int, int]]


def managed_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Parameters FSDP2 manages for ``module``: its subtree minus nested FSDP modules' subtrees, in order."""
    found: list[nn.Parameter] = []
    seen: set[int] = set()

    def visit(current: nn.Module) -> None:
        if current is not module and isinstance(current, FSDPModule):
            return
        for param in current.parameters(recurse=False):
            if param.requires_grad and id(param) not in seen:
                seen.add(id(param))
                found.append(param)
        for child in current.children():
            visit(child)

    visit(module)
    return found


def shard_segments(module: nn.Module) -> Segments:
    """(rows, cols) of each parameter's padded shard, in the order of FSDP2's flat reduce-scatter output.

    A parameter of shape (d0, ...) sharded over W ranks occupies ceil(d0 / W) rows of
    prod(...) columns; 1-D parameters are a single column.
    """
    segments: Segments = []
    for param in managed_parameters(module):
        world = param.device_mesh.size() if isinstance(param, DTensor) else 1
        shape = tuple(param.shape) or (1,)
        segments.append((math.ceil(shape[0] / world), math.prod(shape[1:])))
    return segments


def build_all_reduce_hook(
    codec: Codec, group: dist.ProcessGroup | None, *, key: Hashable, segments: Segments | None = None
) -> Callable[[torch.Tensor], None]:
    """Return a ``set_all_reduce_hook`` hook averaging one FSDP module's gradient shard across pods.

    ``segments`` (from :func:`shard_segments`) is used only when it covers the tensor exactly;
    otherwise (e.g. some parameter got no gradient this step) the tensor is treated as flat.
    """

    def hook(reduce_output: torch.Tensor) -> None:
        fits = segments is not None and sum(r * c for r, c in segments) == reduce_output.numel()
        codec.allreduce_mean(reduce_output, group, key=key, segments=segments if fits else None)

    return hook


def attach_codec(modules: Iterable[nn.Module], codec: Codec, group: dist.ProcessGroup | None) -> int:
    """Hook a codec into every FSDP module among ``modules`` that manages parameters; return how many.

    Hooks are keyed by position. Use with 1-D FSDP meshes only: under native HSDP FSDP2 would
    all-reduce first and the hook would average a second time.
    """
    count = 0
    for index, module in enumerate(m for m in modules if isinstance(m, FSDPModule) and managed_parameters(m)):
        hook = build_all_reduce_hook(codec, group, key=("fsdp", index), segments=shard_segments(module))
        module.set_all_reduce_hook(hook)
        count += 1
    return count
