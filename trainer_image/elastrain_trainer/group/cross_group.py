"""Wiring the cross-group reduction into a model: FSDP2's all-reduce hooks (fsdp) or whole gradients (ddp).

With fsdp and ``overlap.asyncReduce`` (the default) each unit's hook only queues its reduce-scattered
shard; buckets of ``overlap.bucketSizeMB`` are averaged across groups by a background thread while
backward goes on, and the step waits for the rest after backward
(:class:`~elastrain_trainer.overlap.CrossPodReducer`). Without it every unit's shard is averaged in
its hook, synchronously. Either way the step commits only after every reduction finished, so a group
lost in the middle of one fails the step everywhere. Synchronous reductions are timed on a
:class:`CommClock`, so a step can report its communication time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import FSDPModule

from elastrain_trainer.compression.fsdp_hook import Segments, managed_parameters, shard_segments
from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.group.codec_reduce import ManagedCodecReduce
from elastrain_trainer.overlap import MIB, BucketReduce, CrossPodReducer
from elastrain_trainer.parallel import ReduceHook, set_cross_group_reduce
from elastrain_trainer.precision import TORCH_DTYPES, sharded_param_dtype


class CommClock:
    """Seconds spent in cross-group reductions since the last :meth:`restart`."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def restart(self) -> None:
        self.seconds = 0.0

    def timed(self, reduce: ReduceHook) -> Callable[[torch.Tensor], None]:
        """``reduce``, waited for and timed."""

        def timed(tensor: torch.Tensor) -> None:
            start = time.perf_counter()
            work = reduce(tensor)
            if work is not None:
                work.wait()  # type: ignore[attr-defined]
            self.seconds += time.perf_counter() - start

        return timed


def attach_cross_group_reduce(model: nn.Module, reduce: ReduceHook, clock: CommClock) -> None:
    """Average each FSDP unit's reduce-scattered gradient across groups with ``reduce``.

    A codec gets one hook per unit, with a stable key (its error-feedback residual) and the layout
    of the unit's parameter shards (PowerSGD compresses real matrices); any other reduction is the
    same hook on every unit.
    """
    if not isinstance(reduce, ManagedCodecReduce):
        set_cross_group_reduce(model, clock.timed(reduce))
        return
    units = [m for m in model.modules() if isinstance(m, FSDPModule) and managed_parameters(m)]
    for index, unit in enumerate(units):
        unit.set_all_reduce_hook(clock.timed(reduce.for_unit(("fsdp", index), shard_segments(unit))))


def overlap_applies(cfg: TrainerConfig) -> bool:
    """Whether the fsdp cross-group reduction runs in buckets behind backward (``overlap.asyncReduce``).

    The background result reaches the gradients only when FSDP2 keeps them as views of the shard it
    reduced: with ``precision.reduceDtype`` unlike the sharded parameters' dtype it casts a copy, so
    the reduction stays synchronous in each unit's hook there (as with ``asyncReduce: false``).
    ``reduceDtype`` is fp32 or bf16, which FSDP2 averages inside its collective, never after the hook.
    """
    keeps_views = TORCH_DTYPES[cfg.precision.reduce_dtype] == sharded_param_dtype(cfg.precision)
    return cfg.parallelism.strategy == "fsdp" and cfg.overlap.async_reduce and keeps_views


def bucket_reduce(reduce: ReduceHook) -> BucketReduce:
    """``reduce`` for a bucket of several units' shards: a codec's key and layout, or torchft's average, waited for."""
    if isinstance(reduce, ManagedCodecReduce):
        codec = reduce

        def codec_bucket(buffer: torch.Tensor, key: Hashable, segments: Segments | None) -> None:
            codec.reduce(buffer, key=key, segments=segments)

        return codec_bucket

    def plain_bucket(buffer: torch.Tensor, key: Hashable, segments: Segments | None) -> None:
        work = reduce(buffer)
        if work is not None:
            work.wait()  # type: ignore[attr-defined]

    return plain_bucket


def attach_overlapped_reduce(model: nn.Module, reduce: ReduceHook, cfg: TrainerConfig) -> CrossPodReducer:
    """Queue every FSDP unit's shard and average buckets across groups behind backward; ``finish()`` after it."""
    reducer = CrossPodReducer(
        bucket_reduce(reduce), bucket_bytes=int(cfg.overlap.bucket_size_mb * MIB), async_reduce=True
    )
    reducer.attach(model.modules())
    return reducer


def reduce_replicated_grads(model: nn.Module, reduce: Callable[[torch.Tensor], None]) -> None:
    """ddp: average whole gradients in the group, then across groups through the same seam."""
    for param in model.parameters():
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        dist.all_reduce(param.grad, op=dist.ReduceOp.AVG)
        reduce(param.grad)
