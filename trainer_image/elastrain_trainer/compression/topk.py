"""Top-k sparsification with error feedback: send the largest ``topkRatio`` of entries by magnitude.

Each rank sends (fp32 value, int32 index) pairs; ranks choose different indices, so the pairs are
all-gathered and scattered into a dense sum. Entries not sent accumulate in the residual until
they are large enough to be sent. The dynamic policy halves or doubles the ratio within
[minTopkRatio, maxTopkRatio].
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import torch
import torch.distributed as dist

from elastrain_trainer.compression.codec import Codec
from elastrain_trainer.compression.gather import allgather
from elastrain_trainer.compression.policy import Strength
from elastrain_trainer.compression.stats import allgather_wire_bytes
from elastrain_trainer.config.compression import DynamicCompressionConfig


def select_topk(flat: torch.Tensor, ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (values, int32 indices) of the ``ceil(ratio * numel)`` largest-magnitude entries."""
    k = max(1, min(flat.numel(), math.ceil(ratio * flat.numel())))
    indices = torch.topk(flat.abs(), k, sorted=False).indices
    return flat[indices], indices.to(torch.int32)


class TopKCodec(Codec):
    """Sparse (value, index) pairs, all-gathered and summed densely."""

    name = "topk"

    def __init__(
        self,
        ratio: float,
        *,
        error_feedback: bool = True,
        start_step: int = 0,
        dynamic: DynamicCompressionConfig | None = None,
    ) -> None:
        super().__init__(start_step=start_step, dynamic=dynamic)
        self.ratio = ratio
        self.error_feedback = error_feedback

    def _reduce(
        self,
        tensor: torch.Tensor,
        group: dist.ProcessGroup | None,
        *,
        key: Hashable,
        world: int,
        segments: Sequence[tuple[int, int]] | None = None,
    ) -> int:
        flat = self._compensate(key, tensor.flatten(), self.error_feedback)
        values, indices = select_topk(flat, self.ratio)
        sent = torch.zeros_like(flat).index_put_((indices.long(),), values)
        self._keep_residual(key, flat, sent, self.error_feedback)
        total = torch.zeros_like(flat)
        for v, i in zip(allgather(values, group, world), allgather(indices, group, world), strict=True):
            total.index_add_(0, i.long(), v)
        tensor.copy_(total.div_(world).view_as(tensor))
        return allgather_wire_bytes(values.numel() * (values.element_size() + indices.element_size()), world)

    @property
    def strength(self) -> str:
        return f"topk={self.ratio:g}"

    @property
    def strength_value(self) -> float:
        return self.ratio

    def set_strength(self, value: Strength) -> None:
        self.ratio = float(value)
