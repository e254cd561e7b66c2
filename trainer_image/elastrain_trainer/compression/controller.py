"""The driver's strength controller: the dynamic policy across replica groups, one strength per step.

Each group could follow the policy on its own, but groups at different strengths send payloads of
different shapes and the cross-group collective breaks. So the driver decides: it feeds the
controller one :class:`StepSample` per committed step (the groups' communication share and
compression error), the controller applies :func:`decide_strength` every ``adjustIntervalSteps``
samples, and the driver sends :attr:`StrengthController.strength` to every group in the step's
plan. Pure: no torch, no Ray, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from elastrain_trainer.compression.policy import Decision, Observation, Strength, decide_strength, next_strength
from elastrain_trainer.config.compression import TUNABLE_CODECS, CompressionConfig


def initial_strength(cfg: CompressionConfig) -> Strength | None:
    """The configured strength of a tunable codec (int8_block starts on); None for the others."""
    match cfg.codec:
        case "topk":
            return cfg.topk_ratio
        case "powersgd":
            return cfg.powersgd_rank
        case "int8_block":
            return True
    return None


@dataclass(frozen=True)
class StepSample:
    """What the groups measured in one committed step."""

    comm_fraction: float
    """Cross-pod communication time divided by step time (averaged over the ranks)."""
    residual_sq: float = 0.0
    """Squared norm of what compression dropped, summed over the ranks."""
    signal_sq: float = 0.0
    """Squared norm of the compensated gradients, summed over the ranks."""


@dataclass(frozen=True)
class Adjustment:
    """One decision of the controller: at which step, what, and the strength after it."""

    step: int
    decision: Decision
    strength: Strength


@dataclass
class StrengthController:
    """Holds the current strength and the measurements of the running adjustment interval."""

    cfg: CompressionConfig
    strength: Strength
    history: list[Adjustment] = field(default_factory=list)
    _samples: int = 0
    _comm_fraction: float = 0.0
    _residual_sq: float = 0.0
    _signal_sq: float = 0.0

    @classmethod
    def from_config(cls, cfg: CompressionConfig) -> StrengthController | None:
        """A controller at the configured strength; None unless the dynamic policy is on for a tunable codec."""
        strength = initial_strength(cfg)
        if not cfg.dynamic.enabled or cfg.codec not in TUNABLE_CODECS or strength is None:
            return None
        return cls(cfg=cfg, strength=strength)

    def observe(self, step: int, sample: StepSample) -> Decision | None:
        """Record committed step ``step``; at the end of an interval decide, move the strength, return the decision.

        Steps before ``startStep`` are sent uncompressed and say nothing about the strength: ignored.
        """
        if step < self.cfg.start_step:
            return None
        self._samples += 1
        self._comm_fraction += sample.comm_fraction
        self._residual_sq += sample.residual_sq
        self._signal_sq += sample.signal_sq
        dynamic = self.cfg.dynamic
        if self._samples < dynamic.adjust_interval_steps:
            return None
        observation = Observation(
            comm_fraction=self._comm_fraction / self._samples,
            residual_ratio=(self._residual_sq / self._signal_sq) ** 0.5 if self._signal_sq > 0 else None,
        )
        decision = decide_strength(dynamic, observation)
        self.strength = next_strength(self.cfg.codec, self.strength, decision, dynamic)
        self.history.append(Adjustment(step=step, decision=decision, strength=self.strength))
        self._samples = 0
        self._comm_fraction = self._residual_sq = self._signal_sq = 0.0
        return decision
