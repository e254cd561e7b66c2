"""A compression codec as the cross-group reduction, inside torchft's fault-tolerant path.

The codec's collectives run on the torchft Manager's process group (reconfigured at every quorum
change), so they reach exactly the groups of the current quorum, and they keep
``manager.allreduce``'s semantics:

- after an error in this step every further reduction is skipped (the step cannot commit);
- an exception in a collective or in encoding is passed to ``manager.report_error`` and the
  tensor is zeroed, so ``should_commit`` returns False for this group;
- the result is the average over the participating groups. The codec divides by the process
  group's size, so it runs only when every member of the process group participates (always the
  case with a synchronous quorum, which heals before the forward pass); otherwise the step falls
  back to ``manager.allreduce``, which zeroes a non-participant's part. Every group sees the same
  sizes, so all take the same branch.
- error-feedback residuals and PowerSGD's warm start are dropped when the quorum changes: the
  other groups' state no longer matches (a joining group starts without any);
- the strength (top-k ratio, PowerSGD rank, int8 on/off) is the one the driver put in the step's
  plan, the same for every group (:meth:`ManagedCodecReduce.set_strength`); a change drops the
  residuals and warm start too, since their shapes and meaning change with it.

torchft's own quantized all-reduce is never used: it needs Triton on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import torch

from elastrain_trainer.compression import Codec, Strength, allreduce_wire_bytes
from elastrain_trainer.compression.codec import FP32_BYTES
from elastrain_trainer.compression.fsdp_hook import Segments


class ManagedCodecReduce:
    """Average gradient tensors across the quorum's groups with ``codec``, through ``manager``."""

    def __init__(self, manager: Any, codec: Codec) -> None:
        self.manager = manager
        self.codec = codec
        self.resets = 0
        """Times the codec's state was dropped because the quorum changed."""
        self.fallbacks = 0
        """Reductions done by ``manager.allreduce`` because not every group participated."""
        self.strength_resets = 0
        """Times the codec's state was dropped because the driver changed the strength."""
        self._quorum_id: int | None = None
        self._reported = (0, 0)

    def set_strength(self, strength: Strength | None) -> None:
        """Compress at the plan's ``strength`` from this step on (None: keep the codec's own)."""
        if strength is None or strength == self.codec.strength_value:
            return
        self.codec.set_strength(strength)
        self.codec.reset()
        self.strength_resets += 1

    def __call__(self, tensor: torch.Tensor) -> None:
        """Reduce a whole tensor; its error-feedback key is its position in the step (ddp)."""
        self.reduce(tensor)

    def for_unit(self, key: Hashable, segments: Segments | None) -> Callable[[torch.Tensor], None]:
        """A reduction for one FSDP unit: a stable key and the matrices its flat shard holds."""

        def reduce_unit(tensor: torch.Tensor) -> None:
            fits = segments is not None and sum(r * c for r, c in segments) == tensor.numel()
            self.reduce(tensor, key=key, segments=segments if fits else None)

        return reduce_unit

    def reduce(self, tensor: torch.Tensor, *, key: Hashable | None = None, segments: Segments | None = None) -> None:
        """Leave the average over the participating groups in ``tensor`` (see the module docstring)."""
        manager = self.manager
        if manager.errored():
            return  # this step will not commit; its peers time out of (or finished) their collectives
        try:
            manager.wait_quorum()
            pg = manager._pg
            if int(manager.num_participants()) != int(pg.size()):
                self._fallback(tensor, int(pg.size()))
                return
            self._follow_quorum(int(manager._quorum_id))
            if not manager.is_participating():
                # Contribute exact zeros: no residual may leak into the average.
                self.codec.reset()
                tensor.zero_()
            self.codec.step = int(manager.current_step())  # start_step counts committed steps, as on every peer
            self.codec.allreduce_mean(tensor, pg, key=key, segments=segments)
        except Exception as error:
            manager.report_error(error)
            tensor.zero_()

    def _fallback(self, tensor: torch.Tensor, members: int) -> None:
        self.fallbacks += 1
        work = self.manager.allreduce(tensor, should_quantize=False)
        work.wait()
        sent = allreduce_wire_bytes(tensor.numel() * tensor.element_size(), members)
        self.codec.stats.bytes_sent += sent
        self.codec.stats.bytes_uncompressed += allreduce_wire_bytes(tensor.numel() * FP32_BYTES, members)

    def _follow_quorum(self, quorum_id: int) -> None:
        if self._quorum_id is not None and quorum_id != self._quorum_id:
            self.codec.reset()
            self.resets += 1
        self._quorum_id = quorum_id

    def end_step(self, *, step_seconds: float) -> dict[str, float]:
        """Close the step for the codec; return this step's traffic and compression error (for ``StepResult.extra``)."""
        self.codec.end_step(step_seconds=step_seconds)
        stats = self.codec.stats
        sent, uncompressed = stats.bytes_sent - self._reported[0], stats.bytes_uncompressed - self._reported[1]
        self._reported = (stats.bytes_sent, stats.bytes_uncompressed)
        # The codec's own policy is off on this path (the driver decides), so its error sums are ours to drain.
        measured = self.codec.measurements
        residual_sq, signal_sq = measured.residual_sq, measured.signal_sq
        measured.residual_sq = measured.signal_sq = 0.0
        extra = {
            "compression_bytes_sent": float(sent),
            "compression_bytes_uncompressed": float(uncompressed),
            "compression_resets": float(self.resets),
            "compression_fallbacks": float(self.fallbacks),
            "compression_strength_resets": float(self.strength_resets),
            "compression_residual_sq": residual_sq,
            "compression_signal_sq": signal_sq,
        }
        if self.codec.strength_value is not None:
            extra["compression_strength"] = float(self.codec.strength_value)
        return extra
