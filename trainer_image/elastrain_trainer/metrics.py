"""Per-step metrics the driver collects from the groups (and hands on to the operator)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
