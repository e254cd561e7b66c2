"""PowerSGD (Vogels et al., 2019): a rank-r approximation ``P Q^T`` of each gradient matrix.

One power-iteration step per reduction, warm-started from the previous ``Q``: ``P = M Q``,
all-reduce P, orthonormalise it, ``Q = M^T P``, all-reduce Q; the result is ``P Q^T``, the
projection of the ranks' mean onto span(P), identical on every rank. P and Q are fp32 sums, so a
plain all-reduce is right here. What each rank's own share ``P (M^T P)^T`` misses is fed back.

A flat tensor (FSDP2's reduce-scatter output) is split into the matrices ``segments`` describes
(one per parameter shard, see :func:`~elastrain_trainer.compression.fsdp_hook.shard_segments`);
without segments, a tensor is viewed as (first dim, rest), a 1-D one as the most square matrix it
fills. Matrices whose rank-r factors would not be smaller, and biases, are reduced exactly. All
P's of one call travel in one all-reduce, all Q's (and the exact part) in another. The dynamic
policy halves or doubles the rank within [minRank, maxRank].
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import torch
import torch.distributed as dist

from elastrain_trainer.compression.codec import FP32_BYTES, Codec
from elastrain_trainer.compression.policy import Strength
from elastrain_trainer.compression.stats import allreduce_wire_bytes
from elastrain_trainer.config.compression import DynamicCompressionConfig

#: Seed of the initial Q, identical on every rank (the factors must agree across ranks).
POWERSGD_SEED = 20190604


def matrix_shape(shape: torch.Size | Sequence[int]) -> tuple[int, int]:
    """The (rows, cols) a tensor of ``shape`` is compressed as when no segments are given."""
    if len(shape) >= 2:
        return shape[0], math.prod(shape[1:])
    numel = math.prod(shape)
    rows = max(1, math.isqrt(numel))
    return rows, math.ceil(numel / rows)


def orthonormalize(matrix: torch.Tensor) -> torch.Tensor:
    """Orthonormal columns spanning ``matrix``'s columns (QR; deterministic on every rank)."""
    q: torch.Tensor = torch.linalg.qr(matrix, mode="reduced").Q
    return q


def _split(flat: torch.Tensor, sizes: Sequence[int]) -> list[torch.Tensor]:
    return list(torch.split(flat, list(sizes))) if sizes else []


class PowerSGDCodec(Codec):
    """Low-rank factors all-reduced in fp32, with error feedback and warm-started Q."""

    name = "powersgd"

    def __init__(
        self,
        rank: int,
        *,
        error_feedback: bool = True,
        start_step: int = 0,
        dynamic: DynamicCompressionConfig | None = None,
    ) -> None:
        super().__init__(start_step=start_step, dynamic=dynamic)
        self.rank = rank
        self.error_feedback = error_feedback
        self._queries: dict[Hashable, torch.Tensor] = {}

    def _query(self, key: Hashable, cols: int, rank: int) -> torch.Tensor:
        query = self._queries.get(key)
        if query is None or query.shape != (cols, rank):
            query = torch.randn(cols, rank, generator=torch.Generator().manual_seed(POWERSGD_SEED))
        return query

    def _reduce(
        self,
        tensor: torch.Tensor,
        group: dist.ProcessGroup | None,
        *,
        key: Hashable,
        world: int,
        segments: Sequence[tuple[int, int]] | None = None,
    ) -> int:
        if segments is None:
            rows, cols = matrix_shape(tensor.shape)
            segments = [(rows, cols)]
        flat = self._compensate(key, tensor.flatten(), self.error_feedback)
        padded = torch.nn.functional.pad(flat, (0, max(0, sum(r * c for r, c in segments) - flat.numel())))
        pieces = _split(padded, [r * c for r, c in segments])
        low_rank = [i for i, (r, c) in enumerate(segments) if (r + c) * min(self.rank, r, c) < r * c and min(r, c) > 1]
        exact = [i for i in range(len(segments)) if i not in set(low_rank)]
        matrices = {i: pieces[i].view(segments[i]) for i in low_rank}
        ranks = {i: min(self.rank, *segments[i]) for i in low_rank}

        ps = [matrices[i] @ self._query((key, i), segments[i][1], ranks[i]) for i in low_rank]
        p_flat = torch.cat([p.flatten() for p in ps]) if ps else torch.zeros(0)
        dist.all_reduce(p_flat, group=group)
        p_flat.div_(world)
        ps = [orthonormalize(p.view_as(q)) for p, q in zip(_split(p_flat, [p.numel() for p in ps]), ps, strict=True)]

        own_qs = [matrices[i].t() @ p for i, p in zip(low_rank, ps, strict=True)]
        exact_part = torch.cat([pieces[i] for i in exact]) if exact else torch.zeros(0)
        # The Q's and the exactly reduced remainder travel together in the second all-reduce.
        second = torch.cat([*(q.flatten() for q in own_qs), exact_part])
        dist.all_reduce(second, group=group)
        second.div_(world)
        chunks = _split(second, [*(q.numel() for q in own_qs), exact_part.numel()])
        approx_pieces: dict[int, torch.Tensor] = {}
        own_pieces: dict[int, torch.Tensor] = {}
        for j, i in enumerate(low_rank):
            q = chunks[j].view_as(own_qs[j])
            self._queries[(key, i)] = q
            approx_pieces[i] = (ps[j] @ q.t()).flatten()
            own_pieces[i] = (ps[j] @ own_qs[j].t()).flatten()
        exact_chunks = _split(chunks[-1], [pieces[i].numel() for i in exact]) if exact else []
        for i, chunk in zip(exact, exact_chunks, strict=True):
            approx_pieces[i] = chunk
            own_pieces[i] = pieces[i]
        order = range(len(segments))
        approx = torch.cat([approx_pieces[i] for i in order])[: flat.numel()]
        own = torch.cat([own_pieces[i] for i in order])[: flat.numel()]
        self._keep_residual(key, flat, own, self.error_feedback)
        tensor.copy_(approx.view_as(tensor))
        return allreduce_wire_bytes((p_flat.numel() + second.numel()) * FP32_BYTES, world)

    def reset(self) -> None:
        super().reset()
        self._queries.clear()

    @property
    def strength(self) -> str:
        return f"rank={self.rank}"

    @property
    def strength_value(self) -> int:
        return self.rank

    def set_strength(self, value: Strength) -> None:
        self.rank = int(value)
