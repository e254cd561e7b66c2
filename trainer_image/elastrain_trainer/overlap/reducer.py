"""Bucketed, asynchronous cross-pod reduction of FSDP2 gradient shards.

FSDP2 calls each unit's all-reduce hook as soon as backward has reduce-scattered that unit's
gradients inside the pod. With ``asyncReduce`` the hook only queues the shard; once the queued
shards reach ``bucketSizeMB`` they are concatenated into a bucket and one background thread
averages it across pods (a :data:`BucketReduce`: a codec on a process group, or the torchft
Manager's fault-tolerant average in the trainer) while backward continues (gloo and NCCL collectives
release the GIL). :meth:`CrossPodReducer.finish`, called after ``loss.backward()`` and before
clipping and the optimizer step, flushes the last bucket, waits, and writes each bucket's result
back into the shards. The sharded gradients are views of those shards, so they see the result.
That holds only when FSDP2 does not copy the shard afterwards: the reduce dtype must equal the
gradient dtype and ``zero_grad`` must set gradients to None; ``finish`` checks the aliasing and
raises if it is broken. Without ``asyncReduce`` each shard is reduced synchronously in its hook.

Buckets form in backward order, which is the same every step and on every rank, so bucket
``i`` of a step is always the same tensors: that position is the codec's error-feedback key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor

from elastrain_trainer.compression.codec import Codec
from elastrain_trainer.compression.fsdp_hook import Segments, managed_parameters, shard_segments

MIB = 1024 * 1024

_HookFn = Callable[[torch.Tensor], None]

BucketReduce = Callable[[torch.Tensor, Hashable, "Segments | None"], None]
"""Leave the average across pods in a bucket (in place), given its error-feedback key and matrix layout."""


@dataclass
class _Shard:
    tensor: torch.Tensor
    module: nn.Module
    segments: Segments | None


@dataclass
class _Bucket:
    shards: list[_Shard]
    buffer: torch.Tensor
    result: Future[float] | None = None


@dataclass
class OverlapTimings:
    """Per-step communication time, and how much of it the step waited for (the rest was hidden)."""

    comm_seconds: list[float] = field(default_factory=list)
    """Time spent in cross-pod reductions, per step."""
    exposed_seconds: list[float] = field(default_factory=list)
    """Time the step blocked on them, per step (all of it when synchronous)."""

    @property
    def hidden_seconds(self) -> list[float]:
        return [max(0.0, c - e) for c, e in zip(self.comm_seconds, self.exposed_seconds, strict=True)]


class CrossPodReducer:
    """Averages FSDP2 units' gradient shards across pods with ``reduce``, in buckets, optionally in the background.

    ``codec``, when given, is the codec ``reduce`` uses: :meth:`finish` closes its step.
    """

    def __init__(
        self, reduce: BucketReduce, *, bucket_bytes: int, async_reduce: bool, codec: Codec | None = None
    ) -> None:
        self.reduce = reduce
        self.codec = codec
        self.bucket_bytes = bucket_bytes
        self.async_reduce = async_reduce
        self.timings = OverlapTimings()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="elastrain-cross-pod") if async_reduce else None
        self._queued: list[_Shard] = []
        self._buckets: list[_Bucket] = []
        self._step_comm = 0.0
        self._step_exposed = 0.0

    def attach(self, modules: Iterable[nn.Module]) -> int:
        """Hook every FSDP module among ``modules`` that manages parameters; return how many."""
        count = 0
        for module in modules:
            if isinstance(module, FSDPModule) and managed_parameters(module):
                module.set_all_reduce_hook(self._hook_for(module, shard_segments(module)))
                count += 1
        return count

    def _hook_for(self, module: nn.Module, segments: Segments) -> _HookFn:
        def hook(reduce_output: torch.Tensor) -> None:
            fits = sum(r * c for r, c in segments) == reduce_output.numel()
            self._add(_Shard(reduce_output, module, segments if fits else None))

        return hook

    def _add(self, shard: _Shard) -> None:
        self._queued.append(shard)
        if not self.async_reduce:
            self._flush()
            return
        if sum(s.tensor.numel() * s.tensor.element_size() for s in self._queued) >= self.bucket_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._queued:
            return
        shards, self._queued = self._queued, []
        # A lone shard is reduced in place; several are concatenated and copied back in finish().
        buffer = shards[0].tensor if len(shards) == 1 else torch.cat([s.tensor.flatten() for s in shards])
        segments: Segments | None = None
        if all(s.segments is not None for s in shards):
            segments = [seg for s in shards for seg in (s.segments or [])]
        bucket = _Bucket(shards, buffer)
        key = ("bucket", len(self._buckets))
        if self._executor is None:
            self._step_comm += self._reduce(buffer, key, segments)
            self._copy_back(bucket)
        else:
            bucket.result = self._executor.submit(self._reduce, buffer, key, segments)
        self._buckets.append(bucket)

    def _reduce(self, buffer: torch.Tensor, key: tuple[str, int], segments: Segments | None) -> float:
        start = time.perf_counter()
        self.reduce(buffer, key, segments)
        return time.perf_counter() - start

    @staticmethod
    def _copy_back(bucket: _Bucket) -> None:
        if len(bucket.shards) == 1:
            return
        offset = 0
        for shard in bucket.shards:
            numel = shard.tensor.numel()
            shard.tensor.copy_(bucket.buffer[offset : offset + numel].view_as(shard.tensor))
            offset += numel

    def finish(self, *, step_seconds: float | None = None) -> None:
        """Complete this step's reductions (call after backward, before clipping and ``optimizer.step``).

        With ``step_seconds`` also closes the codec's step (``codec.end_step``).
        """
        start = time.perf_counter()
        self._flush()
        for bucket in self._buckets:
            if bucket.result is not None:
                self._step_comm += bucket.result.result()
                self._copy_back(bucket)
                self._check_aliasing(bucket)
        exposed = time.perf_counter() - start
        self.timings.comm_seconds.append(self._step_comm)
        self.timings.exposed_seconds.append(exposed if self.async_reduce else self._step_comm)
        self._buckets, self._step_comm = [], 0.0
        if step_seconds is not None and self.codec is not None:
            self.codec.end_step(step_seconds=step_seconds)

    def discard(self) -> None:
        """Drop a step's queued and started buckets without writing them back (a step that raised).

        A reduction still running is waited for first: it must not outlive its step.
        """
        for bucket in self._buckets:
            if bucket.result is not None:
                bucket.result.exception()
        self._queued, self._buckets, self._step_comm = [], [], 0.0

    @staticmethod
    def _check_aliasing(bucket: _Bucket) -> None:
        for shard in bucket.shards:
            storage = shard.tensor.untyped_storage().data_ptr()
            for param in managed_parameters(shard.module):
                grad = param.grad
                local = grad.to_local() if isinstance(grad, DTensor) else grad
                if local is not None and local.untyped_storage().data_ptr() != storage:
                    raise RuntimeError(
                        "overlap.asyncReduce: the gradient of a parameter of shape "
                        f"{tuple(param.shape)} is a copy of FSDP2's reduce-scatter output, so the background "
                        "cross-pod reduction cannot reach it; keep precision.reduceDtype equal to the parameter "
                        "dtype and use optimizer.zero_grad(set_to_none=True), or set overlap.asyncReduce: false"
                    )

    def close(self) -> None:
        """Stop the background thread (after the last step, or before rebuilding on resize)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)


def build_cross_pod_reducer(
    codec: Codec, group: dist.ProcessGroup | None, *, bucket_size_mb: float, async_reduce: bool
) -> CrossPodReducer:
    """Return a reducer averaging with ``codec`` over ``group``, ``overlap.bucketSizeMB`` buckets (MiB) and
    ``overlap.asyncReduce``."""

    def reduce(buffer: torch.Tensor, key: Hashable, segments: Segments | None) -> None:
        codec.allreduce_mean(buffer, group, key=key, segments=segments)

    return CrossPodReducer(reduce, bucket_bytes=int(bucket_size_mb * MIB), async_reduce=async_reduce, codec=codec)
