"""What a ``train`` phase measured: StepMetrics from the ranks' StepResults, held-out evaluation, compression.

After a committed step the driver may evaluate one group on the held-out samples (all groups hold the
same parameters then), and feeds the step's communication share and compression residual to the
dynamic compression strength controller, which decides the strength of every group's next steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from elastrain_trainer.compression import StepSample, Strength, StrengthController
from elastrain_trainer.driver.calls import EventSink
from elastrain_trainer.driver.groups import GroupHandle
from elastrain_trainer.driver.train import TrainOutcome
from elastrain_trainer.group import StepResult
from elastrain_trainer.group.messages import PHASE_PREFIX
from elastrain_trainer.metrics import StepMetrics

#: Perplexity is reported as exp(min(loss, this)) so a diverged run does not overflow.
MAX_LOG_PERPLEXITY = 50.0


def measure_step(
    outcome: TrainOutcome,
    *,
    compression: StrengthController | None,
    evaluate: Callable[[], float | None] | None,
    start_time: float,
    event: EventSink,
) -> StepMetrics | None:
    """One attempt's metrics (None if no rank reported); a committed step also feeds the compression controller.

    ``evaluate``, when an evaluation is due, returns the held-out loss after the step.
    """
    every = [r for rs in outcome.results.values() for r in rs]
    if not every:
        return None
    if outcome.committed and compression is not None:
        adjust_strength(compression, outcome.step, every, event=event)
    val_loss = evaluate() if evaluate is not None else None
    return build_step_metrics(
        every,
        step=outcome.step + 1 if outcome.committed else outcome.step,
        committed=outcome.committed,
        groups=len(outcome.results),
        wall_time=time.monotonic() - start_time,
        val_loss=val_loss,
        strength=outcome.strength,
    )


def build_step_metrics(
    results: list[StepResult],
    *,
    step: int,
    committed: bool,
    groups: int,
    wall_time: float,
    val_loss: float | None,
    strength: Strength | None,
) -> StepMetrics:
    """One attempt's metrics from every rank's result (``results`` not empty), ``step`` as the driver counts it."""
    tokens = sum(r.tokens for r in results)
    step_seconds = max(r.step_seconds for r in results)
    return StepMetrics(
        step=step,
        committed=committed,
        loss=sum(r.loss_sum for r in results) / max(1, tokens),
        tokens_per_second=tokens / max(step_seconds, 1e-9),
        step_seconds=step_seconds,
        compute_seconds=max(r.compute_seconds for r in results),
        comm_seconds=max(r.comm_seconds for r in results),
        groups=groups,
        world_size=len(results),
        wall_time=wall_time,
        val_loss=val_loss,
        perplexity=math.exp(min(val_loss, MAX_LOG_PERPLEXITY)) if val_loss is not None else None,
        compression_bytes_sent=int(sum(r.extra.get("compression_bytes_sent", 0.0) for r in results)),
        compression_strength=float(strength) if strength is not None else None,
        phases=step_phases(results),
    )


def step_phases(results: list[StepResult]) -> dict[str, float]:
    """Each phase's seconds on the rank slowest in it (what the step waited for)."""
    phases: dict[str, float] = {}
    for result in results:
        for key, value in result.extra.items():
            if key.startswith(PHASE_PREFIX):
                name = key.removeprefix(PHASE_PREFIX)
                phases[name] = max(phases.get(name, 0.0), value)
    return phases


def strength_sample(results: list[StepResult]) -> StepSample:
    """One committed step's measurements for the compression strength controller."""
    fractions = [r.comm_seconds / r.step_seconds for r in results if r.step_seconds > 0]
    return StepSample(
        comm_fraction=sum(fractions) / len(fractions) if fractions else 0.0,
        residual_sq=sum(r.extra.get("compression_residual_sq", 0.0) for r in results),
        signal_sq=sum(r.extra.get("compression_signal_sq", 0.0) for r in results),
    )


def adjust_strength(compression: StrengthController, step: int, results: list[StepResult], *, event: EventSink) -> None:
    """Feed committed step ``step`` to the controller; a real strength change is an event."""
    before = compression.strength
    decision = compression.observe(step, strength_sample(results))
    if decision not in (None, "keep") and compression.strength != before:  # not at a bound already
        event("compression_adjusted", decision=decision, strength=compression.strength, previous=before)


def eval_due(step: int, *, interval: int, eval_samples: int, steps: int) -> bool:
    """Whether committed step ``step`` is evaluated: every ``interval`` steps and at the end, if evaluating."""
    return interval > 0 and eval_samples > 0 and (step % interval == 0 or step >= steps)


def evaluate_group(group: GroupHandle | None, eval_range: range, *, timeout_seconds: float) -> float | None:
    """Mean held-out loss of one group (all groups hold the same parameters after a committed step)."""
    if group is None:
        return None
    group.release()  # every rank is called: its followers leave their follow call first
    refs = [a.evaluate.remote(eval_range.start, eval_range.stop) for a in group.actors]
    try:
        parts: list[tuple[float, int]] = ray.get(refs, timeout=timeout_seconds)
    except (RayActorError, RayTaskError, GetTimeoutError):
        return None  # the group is lost; the next step's quorum notices
    tokens = sum(t for _, t in parts)
    return float(sum(s for s, _ in parts)) / max(1, tokens)
