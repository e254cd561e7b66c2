"""int8 block quantisation: each block of ``blockSize`` entries is sent as int8 plus one fp32 scale.

Symmetric, round-to-nearest: ``q = round(x / s)`` with ``s = max|x| / 127`` per block. The
dropped rounding error is fed back into the next step's gradient (error feedback). The dynamic
policy switches the codec between int8 (harder) and exact fp32 (softer).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
import torch.distributed as dist

from elastrain_trainer.compression.codec import Codec, exact_allreduce_mean
from elastrain_trainer.compression.gather import allgather
from elastrain_trainer.compression.policy import Strength
from elastrain_trainer.compression.stats import allgather_wire_bytes
from elastrain_trainer.config.compression import DynamicCompressionConfig

INT8_MAX = 127
#: Smallest scale, so an all-zero block quantises to zeros instead of dividing by zero.
MIN_SCALE = 1e-30


def quantize_blocks(flat: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (int8 values padded to whole blocks, fp32 scale per block) for a 1-D fp32 tensor."""
    padded = torch.nn.functional.pad(flat, (0, -flat.numel() % block_size)).view(-1, block_size)
    scales = padded.abs().amax(dim=1).div_(INT8_MAX).clamp_(min=MIN_SCALE)
    values = torch.round(padded / scales[:, None]).clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)
    return values, scales


def dequantize_blocks(values: torch.Tensor, scales: torch.Tensor, numel: int) -> torch.Tensor:
    """Inverse of :func:`quantize_blocks`, cut back to ``numel`` entries."""
    return (values.float() * scales[:, None]).flatten()[:numel]


class Int8BlockCodec(Codec):
    """int8 with an fp32 scale per block, all-gathered and averaged in fp32."""

    name = "int8_block"

    def __init__(
        self,
        block_size: int,
        *,
        error_feedback: bool = True,
        start_step: int = 0,
        dynamic: DynamicCompressionConfig | None = None,
    ) -> None:
        super().__init__(start_step=start_step, dynamic=dynamic)
        self.block_size = block_size
        self.error_feedback = error_feedback
        self.enabled = True

    def _reduce(
        self,
        tensor: torch.Tensor,
        group: dist.ProcessGroup | None,
        *,
        key: Hashable,
        world: int,
        segments: Sequence[tuple[int, int]] | None = None,
    ) -> int:
        if not self.enabled:
            return exact_allreduce_mean(tensor, group, world)
        flat = self._compensate(key, tensor.flatten(), self.error_feedback)
        values, scales = quantize_blocks(flat, self.block_size)
        self._keep_residual(key, flat, dequantize_blocks(values, scales, flat.numel()), self.error_feedback)
        total = torch.zeros_like(flat)
        for v, s in zip(allgather(values, group, world), allgather(scales, group, world), strict=True):
            total += dequantize_blocks(v, s, flat.numel())
        tensor.copy_(total.div_(world).view_as(tensor))
        return allgather_wire_bytes(values.numel() + scales.numel() * scales.element_size(), world)

    @property
    def strength(self) -> str:
        return "int8" if self.enabled else "fp32"

    @property
    def strength_value(self) -> bool:
        return self.enabled

    def set_strength(self, value: Strength) -> None:
        self.enabled = bool(value)
