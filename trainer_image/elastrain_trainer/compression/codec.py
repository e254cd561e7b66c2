"""The codec interface: average a tensor in place across pods, possibly compressed.

A :class:`Codec` owns what persists between steps: error-feedback residuals (keyed per reduced
tensor), the step counter (``start_step``: exact before it), traffic counters, and the dynamic
policy's measurements. Subclasses implement :meth:`Codec._reduce` for world sizes above one.

Lossy payloads are all-gathered and each rank decodes and averages them in rank order, so every
rank ends with bit-identical results (replicas stay in sync) and nothing is summed in int8 or fp16.

Call protocol per optimizer step: ``allreduce_mean`` for each tensor (with a stable ``key``, or
in the same order every step), then ``end_step(step_seconds=...)``; ``reset()`` after a resize.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from elastrain_trainer.compression.policy import Decision, Observation, Strength, decide_strength, next_strength
from elastrain_trainer.compression.stats import CommStats, allreduce_wire_bytes
from elastrain_trainer.config.compression import DynamicCompressionConfig

FP32_BYTES = 4


def exact_allreduce_mean(tensor: torch.Tensor, group: dist.ProcessGroup | None, world: int) -> int:
    """Average ``tensor`` in place with a plain all-reduce; return the bytes sent."""
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)
    tensor.div_(world)
    return allreduce_wire_bytes(tensor.numel() * tensor.element_size(), world)


@dataclass
class StepMeasurements:
    """What the dynamic policy observes between adjustments."""

    comm_seconds: float = 0.0
    step_seconds: float = 0.0
    residual_sq: float = 0.0
    signal_sq: float = 0.0
    history: list[tuple[int, Decision, str]] = field(default_factory=list)
    """(step, decision, strength after it) for every adjustment: what the policy did, as data."""


class Codec(ABC):
    """Averages tensors across a process group; exact unless a subclass compresses."""

    name: str = "abstract"

    def __init__(self, *, start_step: int = 0, dynamic: DynamicCompressionConfig | None = None) -> None:
        self.stats = CommStats()
        self.step = 0
        self.start_step = start_step
        self.dynamic = dynamic if dynamic is not None and dynamic.enabled else None
        self.measurements = StepMeasurements()
        self._residuals: dict[Hashable, torch.Tensor] = {}
        self._calls_this_step = 0

    # --- the collective -------------------------------------------------------------------------
    def allreduce_mean(
        self,
        tensor: torch.Tensor,
        group: dist.ProcessGroup | None = None,
        *,
        key: Hashable | None = None,
        segments: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        """Replace ``tensor`` by its mean over ``group`` (every rank of it must call, same order).

        ``key`` names the tensor for error feedback; by default the call's position in the step
        (and the tensor's size) is the key, which needs ``end_step`` after every step.
        ``segments`` optionally lists the (rows, cols) matrices a flat tensor concatenates (one per
        parameter shard); low-rank codecs compress each matrix, the others ignore it.
        """
        world = dist.get_world_size(group)
        resolved = key if key is not None else ("call", self._calls_this_step, tensor.numel())
        self._calls_this_step += 1
        start = time.perf_counter()
        if world > 1:
            if self.step < self.start_step:
                sent = exact_allreduce_mean(tensor, group, world)
            else:
                sent = self._reduce(tensor, group, key=resolved, world=world, segments=segments)
            self.stats.bytes_sent += sent
            self.stats.bytes_uncompressed += allreduce_wire_bytes(tensor.numel() * FP32_BYTES, world)
        elapsed = time.perf_counter() - start
        self.stats.calls += 1
        self.stats.seconds += elapsed
        self.measurements.comm_seconds += elapsed

    @abstractmethod
    def _reduce(
        self,
        tensor: torch.Tensor,
        group: dist.ProcessGroup | None,
        *,
        key: Hashable,
        world: int,
        segments: Sequence[tuple[int, int]] | None = None,
    ) -> int:
        """Average ``tensor`` in place over ``world > 1`` ranks; return the bytes this rank sent."""

    # --- error feedback -------------------------------------------------------------------------
    def _compensate(self, key: Hashable, flat: torch.Tensor, enabled: bool) -> torch.Tensor:
        """Return ``flat`` in fp32 plus what compression dropped from it last time (if enabled)."""
        value = flat.float()
        residual = self._residuals.get(key) if enabled else None
        if residual is not None and residual.shape == value.shape:
            value = value + residual
        return value

    def _keep_residual(self, key: Hashable, compensated: torch.Tensor, sent: torch.Tensor, enabled: bool) -> None:
        """Remember ``compensated - sent`` for the next step and measure it for the dynamic policy."""
        residual = compensated - sent
        if enabled:
            self._residuals[key] = residual
        self.measurements.residual_sq += float(residual.square().sum())
        self.measurements.signal_sq += float(compensated.square().sum())

    @property
    def residual_count(self) -> int:
        """Tensors with a stored error-feedback residual."""
        return len(self._residuals)

    # --- steps, resize and the dynamic policy ---------------------------------------------------
    def end_step(self, *, step_seconds: float) -> None:
        """Close a step: advance the counter and, every ``adjustIntervalSteps``, let the policy adjust."""
        self.step += 1
        self._calls_this_step = 0
        self.measurements.step_seconds += step_seconds
        if self.dynamic is None or self.step % self.dynamic.adjust_interval_steps:
            return
        m = self.measurements
        observation = Observation(
            comm_fraction=m.comm_seconds / m.step_seconds if m.step_seconds > 0 else 0.0,
            residual_ratio=(m.residual_sq / m.signal_sq) ** 0.5 if m.signal_sq > 0 else None,
        )
        decision = decide_strength(self.dynamic, observation)
        if decision == "harder":
            self.compress_harder()
        elif decision == "softer":
            self.compress_softer()
        m.history.append((self.step, decision, self.strength))
        m.comm_seconds = m.step_seconds = m.residual_sq = m.signal_sq = 0.0

    def reset(self) -> None:
        """Forget residuals and any per-tensor state: the group changed size, old residuals are stale."""
        self._residuals.clear()
        self._calls_this_step = 0

    @property
    def strength(self) -> str:
        """The current compression strength, for metrics and the policy's history."""
        return self.name

    @property
    def strength_value(self) -> Strength | None:
        """The strength as a value (tunable codecs: top-k ratio, PowerSGD rank, int8 on); None if fixed."""
        return None

    def set_strength(self, value: Strength) -> None:
        """Compress at ``value`` from now on (tunable codecs override; the caller resets residuals if needed)."""
        raise ValueError(
            f"codec {self.name} has no strength to set (got {value!r}); only int8_block, topk and powersgd do"
        )

    def compress_harder(self) -> None:
        """Send less, within the dynamic policy's bounds (a no-op for codecs without a strength)."""
        self._turn("harder")

    def compress_softer(self) -> None:
        """Send more, within the dynamic policy's bounds (a no-op for codecs without a strength)."""
        self._turn("softer")

    def _turn(self, decision: Decision) -> None:
        value = self.strength_value
        if value is not None and self.dynamic is not None:
            self.set_strength(next_strength(self.name, value, decision, self.dynamic))


class ExactCodec(Codec):
    """No compression: a plain fp32 all-reduce, bit-exact with FSDP2's native HSDP reduction."""

    name = "none"

    def _reduce(
        self,
        tensor: torch.Tensor,
        group: dist.ProcessGroup | None,
        *,
        key: Hashable,
        world: int,
        segments: Sequence[tuple[int, int]] | None = None,
    ) -> int:
        return exact_allreduce_mean(tensor, group, world)
