"""The dynamic compression policy: a pure decision from measurements, applied by the codec.

bandwidth: compress harder while cross-pod communication takes more than ``targetCommFraction``
of the step, softer once it takes less than ``LOW_WATER`` times that. gradient_variance: compress
softer when the relative compression error ``||residual|| / ||gradient + residual||`` exceeds
``RESIDUAL_RATIO_HIGH``, harder below ``RESIDUAL_RATIO_LOW``. :func:`next_strength` turns a
decision into the next strength within the configured bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from elastrain_trainer.config.compression import DynamicCompressionConfig

Decision = Literal["harder", "softer", "keep"]
Strength = float | int | bool
"""A tunable codec's strength: the top-k ratio, the PowerSGD rank, or whether int8 is on."""

#: Below this fraction of the target communication share, the policy gives accuracy back.
LOW_WATER = 0.5
#: Relative compression error above which the policy compresses less (gradient_variance).
RESIDUAL_RATIO_HIGH = 0.9
#: Relative compression error below which the policy compresses more (gradient_variance).
RESIDUAL_RATIO_LOW = 0.3
#: Factor by which the top-k ratio changes per adjustment.
TOPK_STEP_FACTOR = 2.0


@dataclass(frozen=True)
class Observation:
    """Measurements over the last adjustment interval."""

    comm_fraction: float
    """Time in cross-pod reductions divided by step time."""
    residual_ratio: float | None
    """||dropped|| / ||gradient + residual|| over the interval; None when nothing was compressed."""


def decide_strength(cfg: DynamicCompressionConfig, observation: Observation) -> Decision:
    """Return whether to compress harder, softer, or keep the current strength."""
    if cfg.signal == "bandwidth":
        if observation.comm_fraction > cfg.target_comm_fraction:
            return "harder"
        if observation.comm_fraction < LOW_WATER * cfg.target_comm_fraction:
            return "softer"
        return "keep"
    if observation.residual_ratio is None:
        return "keep"
    if observation.residual_ratio > RESIDUAL_RATIO_HIGH:
        return "softer"
    if observation.residual_ratio < RESIDUAL_RATIO_LOW:
        return "harder"
    return "keep"


def next_strength(codec: str, strength: Strength, decision: Decision, cfg: DynamicCompressionConfig) -> Strength:
    """The strength after ``decision``: top-k ratio and PowerSGD rank halved (harder) or doubled
    (softer) within the config's bounds, int8 on (harder) or off (softer); other codecs keep theirs."""
    if decision == "keep":
        return strength
    harder = decision == "harder"
    match codec:
        case "topk":
            ratio = float(strength)
            return (
                max(cfg.min_topk_ratio, ratio / TOPK_STEP_FACTOR)
                if harder
                else min(cfg.max_topk_ratio, ratio * TOPK_STEP_FACTOR)
            )
        case "powersgd":
            rank = int(strength)
            return max(cfg.min_rank, rank // 2) if harder else min(cfg.max_rank, rank * 2)
        case "int8_block":
            return harder
    return strength
