"""Per-step metrics the driver collects from the groups (and hands on to the operator)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class StepMetrics:
    """One attempted step, committed or not."""

    step: int
    committed: bool
    loss: float
    tokens_per_second: float
    step_seconds: float
    compute_seconds: float
    comm_seconds: float
    groups: int
    world_size: int
    wall_time: float
    val_loss: float | None = None
    """Mean loss on the held-out samples, when this step was evaluated."""
    perplexity: float | None = None
    compression_bytes_sent: int = 0
    """Bytes all ranks sent in cross-pod compressed reductions this step (0 without a codec)."""
    compression_strength: float | None = None
    """The codec's strength this step (top-k ratio, PowerSGD rank, int8 on = 1.0), when the driver sets one."""
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds of the step's phases on the slowest rank of each (data, forward_backward, reduce_exposed,
    commit, optimizer; see :mod:`elastrain_trainer.group.step`): where the step's time went."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepMetrics:
        """Rebuild metrics from :meth:`to_dict` output (e.g. read back from ``--metrics-out`` JSON).

        Keys this version does not know are ignored, so files written by a newer trainer still load;
        keys with a default may be missing, so files written by an older one load too.
        """
        required = [f.name for f in fields(cls) if f.default is MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(
                f"step metrics {dict(data)!r} lack {missing}; pass a dict written by StepMetrics.to_dict()"
            )
        return cls(
            step=int(data["step"]),
            committed=bool(data["committed"]),
            loss=float(data["loss"]),
            tokens_per_second=float(data["tokens_per_second"]),
            step_seconds=float(data["step_seconds"]),
            compute_seconds=float(data["compute_seconds"]),
            comm_seconds=float(data["comm_seconds"]),
            groups=int(data["groups"]),
            world_size=int(data["world_size"]),
            wall_time=float(data["wall_time"]),
            val_loss=_optional_float(data.get("val_loss")),
            perplexity=_optional_float(data.get("perplexity")),
            compression_bytes_sent=int(data.get("compression_bytes_sent", 0)),
            compression_strength=_optional_float(data.get("compression_strength")),
            phases={str(k): float(v) for k, v in (data.get("phases") or {}).items()},
        )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
