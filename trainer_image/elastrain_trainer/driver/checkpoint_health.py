"""Checkpoint health: the saves the groups report, failed ones said loudly, and when to give up.

A failed save never stops training by itself: the saving group abandons it on every rank and
reports it (:class:`~elastrain_trainer.checkpoint.faults.SaveFailure`); the driver records a
``checkpoint_failed`` event whose message is the log line ("checkpoint of step 15 failed: no space
left on device at file:///ckpt, 0 bytes free; the last complete checkpoint is step 10; ..."), the
progress report carries the failure to the operator (condition ``CheckpointsFailing``) until a save
succeeds, and the next scheduled save tries again. Only ``spec.checkpoint.maxConsecutiveFailures``
saves failing in a row (0: never) stop the driver, with a :class:`~elastrain_trainer.errors.SpecError`
naming the cause. Pure: the loop hands it what the groups reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from elastrain_trainer.checkpoint import SaveFailure
from elastrain_trainer.config.progress import CheckpointFailureReport
from elastrain_trainer.driver.calls import EventSink
from elastrain_trainer.errors import SpecError

#: The event of a failed save (a warning in the driver's log).
CHECKPOINT_FAILED = "checkpoint_failed"


@dataclass
class CheckpointHealth:
    """Saves failed in a row since the last one that succeeded, and the newest complete checkpoint."""

    location: str = ""
    """The checkpoint directory as the spec names it (``file:///ckpt``), for the give-up message."""
    max_failures: int = 0
    """Failures in a row before the driver stops (0: never)."""
    last_good: int | None = None
    in_a_row: int = 0
    last: SaveFailure | None = None
    """The newest failure while saves are failing; None once one succeeds."""

    def saved(self, step: int) -> None:
        self.last_good = step if self.last_good is None else max(self.last_good, step)
        self.in_a_row = 0
        self.last = None

    def failed(self, failure: SaveFailure) -> None:
        self.in_a_row += 1
        self.last = failure

    def report(self) -> CheckpointFailureReport | None:
        """What the progress report says while saves fail (the operator's ``CheckpointsFailing``)."""
        if self.last is None:
            return None
        return CheckpointFailureReport(
            step=self.last.step,
            cause=self.last.cause,
            detail=self.last.detail,
            consecutive_failures=self.in_a_row,
        )


def first_failure(failures_by_rank: Iterable[Iterable[SaveFailure]]) -> list[SaveFailure]:
    """The failures of a group's save as rank 0 saw them (it names the cause); another rank's if rank 0 had none."""
    for failures in failures_by_rank:
        listed = list(failures)
        if listed:
            return listed
    return []


def record_saves(
    health: CheckpointHealth,
    *,
    group: str,
    marked: int | None,
    failures: Iterable[SaveFailure],
    event: EventSink,
) -> None:
    """Record a group's saves: each failure (oldest first) as ``checkpoint_failed``, a marked one as ``checkpoint``."""
    for failure in failures:
        health.failed(failure)
        event(
            CHECKPOINT_FAILED,
            group=group,
            checkpoint_step=failure.step,
            cause=failure.cause,
            detail=failure.detail,
            removed=failure.removed,
            last_good=health.last_good,
            failures_in_a_row=health.in_a_row,
            message=failure.describe(last_good=health.last_good),
        )
    if marked is not None:
        health.saved(marked)
        event("checkpoint", group=group, checkpoint_step=marked)


def decide_checkpoint_give_up(health: CheckpointHealth) -> SpecError | None:
    """The error to stop on once ``max_failures`` saves failed in a row; None to keep training."""
    if not health.max_failures or health.in_a_row < health.max_failures or health.last is None:
        return None
    detail = f" ({health.last.detail})" if health.last.detail else ""
    good = f"step {health.last_good}" if health.last_good is not None else "none"
    return SpecError(
        "spec.checkpoint",
        health.location,
        f"{health.in_a_row} checkpoint saves in a row failed, the last at step {health.last.step}: "
        f"{health.last.cause}{detail}; the last complete checkpoint is {good}",
        "free space or fix the storage's permissions and mount, then run the job again (it resumes from the last "
        "complete checkpoint); set spec.checkpoint.maxConsecutiveFailures to 0 to keep training while saves fail",
    )
