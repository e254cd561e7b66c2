"""bf16 / fp16 casting: half the bytes, no error feedback (the rounding error is tiny and unbiased).

Payloads are all-gathered and averaged in fp32, so fp16's range is never exceeded by a sum; a
gradient entry beyond fp16's range (65504) still becomes inf, which the fp16 loss scaler (or the
run's nan checks) catches.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
import torch.distributed as dist

from elastrain_trainer.compression.codec import Codec
from elastrain_trainer.compression.gather import allgather
from elastrain_trainer.compression.stats import allgather_wire_bytes
from elastrain_trainer.config.compression import DynamicCompressionConfig


class CastCodec(Codec):
    """Send each entry in a 16-bit float type."""

    def __init__(
        self, dtype: torch.dtype, *, start_step: int = 0, dynamic: DynamicCompressionConfig | None = None
    ) -> None:
        super().__init__(start_step=start_step, dynamic=dynamic)
        self.dtype = dtype
        self.name = "bf16" if dtype == torch.bfloat16 else "fp16"

    def _reduce(
        self,
        tensor: torch.Tensor,
        group: dist.ProcessGroup | None,
        *,
        key: Hashable,
        world: int,
        segments: Sequence[tuple[int, int]] | None = None,
    ) -> int:
        payload = tensor.to(self.dtype)
        gathered = allgather(payload, group, world)
        total = torch.stack(gathered).float().sum(0)
        tensor.copy_(total.div_(world))
        return allgather_wire_bytes(payload.numel() * payload.element_size(), world)
