"""Per-tensor L2 norms of possibly sharded tensors, with one collective per shard group.

Under FSDP2 a parameter is a DTensor whose local tensor holds only this rank's shard, so a
norm computed locally is wrong. DTensor's own ``vector_norm`` would issue one all-reduce per
parameter; here the squared local norms of all tensors that share a mesh and a sharding are
stacked and reduced together, one all-reduce per sharded mesh dimension.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor, Partial, Shard


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """Return the tensor this rank holds: the local shard of a DTensor, the tensor itself otherwise."""
    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def _reduce_dims(tensor: torch.Tensor) -> tuple[int, ...]:
    """Mesh dimensions over which a tensor's squared norm must be summed (sharded or partial ones)."""
    if not isinstance(tensor, DTensor):
        return ()
    return tuple(i for i, p in enumerate(tensor.placements) if isinstance(p, (Shard, Partial)))


def compute_norms(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Return the L2 norm of each full tensor (fp32 scalars on each tensor's local device).

    Plain tensors and replicated DTensors need no communication; tensors sharded over mesh
    dimensions are grouped by (mesh, dimensions) and each group costs one all-reduce per dimension.
    """
    norms: list[torch.Tensor | None] = [None] * len(tensors)
    groups: dict[tuple[DeviceMesh | None, tuple[int, ...]], list[int]] = {}
    for i, tensor in enumerate(tensors):
        dims = _reduce_dims(tensor)
        mesh = tensor.device_mesh if isinstance(tensor, DTensor) else None
        groups.setdefault((mesh, dims), []).append(i)
    for (mesh, dims), indices in groups.items():
        locals_ = [local_tensor(tensors[i]) for i in indices]
        # _foreach_norm batches the reductions; fp32 so bf16/fp16 shards do not lose precision.
        squares = torch.stack([n.float() for n in torch._foreach_norm(locals_)]).square()
        for dim in dims:
            assert mesh is not None
            dist.all_reduce(squares, op=dist.ReduceOp.SUM, group=mesh.get_group(dim))
        for i, norm in zip(indices, squares.sqrt().unbind(0), strict=True):
            norms[i] = norm
    return [n for n in norms if n is not None]
