"""Counters of cross-pod traffic, and the wire-byte model they use.

Bytes are what one rank puts on the wire, modelled on ring algorithms: an all-reduce of ``B``
bytes over ``W`` ranks sends ``2 (W-1)/W * B``; an all-gather of a ``B``-byte payload sends
``(W-1) * B``. ``bytes_uncompressed`` counts what an exact fp32 all-reduce of the same tensors
would have sent, so ``bytes_sent / bytes_uncompressed`` is the codec's traffic ratio.
"""

from __future__ import annotations

from dataclasses import dataclass


def allreduce_wire_bytes(payload_bytes: int, world: int) -> int:
    """Bytes one rank sends in a ring all-reduce of ``payload_bytes``."""
    return 2 * (world - 1) * payload_bytes // world


def allgather_wire_bytes(payload_bytes: int, world: int) -> int:
    """Bytes one rank sends in a ring all-gather where each rank contributes ``payload_bytes``."""
    return (world - 1) * payload_bytes


@dataclass
class CommStats:
    """Running totals since the codec was built (``reset()`` keeps them; they describe the run)."""

    bytes_sent: int = 0
    """Bytes this rank sent in cross-pod reductions."""
    bytes_uncompressed: int = 0
    """Bytes an exact fp32 all-reduce of the same tensors would have sent."""
    calls: int = 0
    """Reductions performed."""
    seconds: float = 0.0
    """Wall time spent inside reductions (encode, communicate, decode)."""

    @property
    def ratio(self) -> float:
        """Fraction of the uncompressed traffic actually sent (1.0 before any call)."""
        return self.bytes_sent / self.bytes_uncompressed if self.bytes_uncompressed else 1.0
