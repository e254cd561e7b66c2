"""The learning-rate schedule: linear warmup, then one of several decay shapes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from elastrain_trainer.config.base import ConfigModel

ScheduleName = Literal["warmup_cosine", "polynomial", "exponential", "constant", "cosine_restarts"]


class LrScheduleConfig(ConfigModel):
    """Learning-rate schedule: the lr rises linearly over warmupSteps, then follows the named shape.

    Parameters a shape does not use are ignored.
    """

    name: ScheduleName = "warmup_cosine"
    """Shape after warmup: warmup_cosine (cosine decay to minLrRatio at the last step), polynomial
    (decay with exponent power to minLrRatio), exponential (multiply by gamma every step, floored at
    minLrRatio), constant, or cosine_restarts (cosine cycles of restartPeriodSteps, each
    restartMultiplier times longer)."""
    warmup_steps: int = Field(10, ge=0, le=1000000000)
    """Steps of linear warmup from 0 to the peak lr; at most trainer.steps."""
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)
    """Floor of the schedule as a fraction of the peak lr (warmup_cosine, polynomial, exponential, cosine_restarts)."""
    power: float = Field(1.0, gt=0.0, le=10.0)
    """Exponent of the polynomial decay; 1 is linear (polynomial)."""
    gamma: float = Field(0.999, gt=0.0, le=1.0)
    """Per-step multiplicative decay (exponential)."""
    restart_period_steps: int = Field(1000, ge=1, le=1000000000)
    """Length of the first cosine cycle in steps (cosine_restarts)."""
    restart_multiplier: int = Field(1, ge=1, le=10)
    """Each cycle is this many times longer than the previous one (cosine_restarts)."""
