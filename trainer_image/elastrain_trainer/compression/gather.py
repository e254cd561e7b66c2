"""All-gather of equally shaped payloads: how lossy codecs exchange what cannot be summed."""

from __future__ import annotations

import torch
import torch.distributed as dist


def allgather(payload: torch.Tensor, group: dist.ProcessGroup | None, world: int) -> list[torch.Tensor]:
    """Return every rank's ``payload`` (same shape and dtype on all ranks), in rank order."""
    gathered = [torch.empty_like(payload) for _ in range(world)]
    dist.all_gather(gathered, payload.contiguous(), group=group)
    return gathered
