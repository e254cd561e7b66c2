"""The ``CheckpointsFailing`` condition from the driver's progress report, and its Events.

While checkpoint saves fail the driver's report carries the newest failure (its cause in words,
the failures in a row) and training goes on; the condition is True with reason
``CheckpointSaveFailed`` and a message naming the cause and the last complete checkpoint, and an
Event is recorded for each distinct cause (not for every retry). The first report without a failure
after that turns it False (reason ``CheckpointSaved``) with a Normal Event. A round without a report
(the head did not answer) leaves the condition as it was.
"""

from __future__ import annotations

from collections.abc import Callable

from elastrain_operator.api import Condition, ConditionType, Reason, TrainingJobStatus
from elastrain_trainer.config.progress import CheckpointFailureReport, ProgressReport

#: Sets one condition (``compute_status``'s ``put``): type, holds, reason, message.
PutCondition = Callable[[ConditionType, bool, str, str], None]


def failing_message(failure: CheckpointFailureReport, *, last_good: int | None) -> str:
    """``<cause> (<detail>); N save(s) in a row failed, the last at step S; the last complete checkpoint is step G``.

    The message starts with the cause, which is how a new cause is told from a retry of the same one.
    """
    detail = f" ({failure.detail})" if failure.detail else ""
    good = f"step {last_good}" if last_good is not None else "none"
    saves = "save" if failure.consecutive_failures == 1 else "saves"
    return (
        f"{failure.cause}{detail}; {failure.consecutive_failures} {saves} in a row failed, the last at step "
        f"{failure.step}; the last complete checkpoint is {good}; training goes on"
    )


def apply_checkpoint_condition(conditions: list[Condition], report: ProgressReport | None, put: PutCondition) -> None:
    """Set ``CheckpointsFailing`` from ``report``: True while it carries a failure, False once one is saved again."""
    if report is None:
        return
    failure = report.checkpoint_failure
    if failure is not None:
        message = failing_message(failure, last_good=report.last_checkpoint_step)
        put(ConditionType.CHECKPOINTS_FAILING, True, Reason.CHECKPOINT_SAVE_FAILED, message)
    elif _failing(conditions) is not None:
        step = report.last_checkpoint_step
        saved = f"the checkpoint of step {step} was saved" if step is not None else "saves succeed again"
        put(ConditionType.CHECKPOINTS_FAILING, False, Reason.CHECKPOINT_SAVED, saved)


def checkpoint_notes(prior: TrainingJobStatus | None, new: TrainingJobStatus | None) -> list[tuple[str, Reason, str]]:
    """Events (type, reason, message): a Warning per new cause of failing saves, a Normal one when they recover."""
    before = _failing(prior.conditions or [] if prior is not None else [])
    after = _failing(new.conditions or [] if new is not None else [])
    if after is not None:
        cause = (after.message or "").split(" (", 1)[0].split(";", 1)[0]
        if before is None or not (before.message or "").startswith(cause):
            return [("Warning", Reason.CHECKPOINT_SAVE_FAILED, f"checkpoint save failed: {after.message}")]
        return []
    if before is not None and new is not None:
        recovered = next((c for c in new.conditions or [] if c.type == ConditionType.CHECKPOINTS_FAILING), None)
        if recovered is not None and recovered.reason == Reason.CHECKPOINT_SAVED:
            return [("Normal", Reason.CHECKPOINT_SAVED, f"checkpoints work again: {recovered.message}")]
    return []


def _failing(conditions: list[Condition]) -> Condition | None:
    return next(
        (c for c in conditions if c.type == ConditionType.CHECKPOINTS_FAILING.value and c.status == "True"), None
    )
