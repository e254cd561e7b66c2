"""``compute_status``: the job's next status from its decision, on a copy; the handler writes it once if it changed.

Conditions follow Kubernetes conventions: one per type, ``lastTransitionTime`` moves only when
``status`` flips, ``observedGeneration`` says which spec they describe.
"""

from __future__ import annotations

from datetime import datetime

from elastrain_operator.api import (
    Condition,
    ConditionType,
    ExportStatus,
    JobPhase,
    ProgressStatus,
    Reason,
    ResizeRecord,
    TrainingJob,
    TrainingJobStatus,
    WorkersStatus,
)
from elastrain_operator.builders.names import worker_selector
from elastrain_operator.reconcile.checkpoint_condition import apply_checkpoint_condition, checkpoint_notes
from elastrain_operator.reconcile.decide import Decision, Note
from elastrain_operator.reconcile.observed import Observed
from elastrain_trainer.config.progress import ProgressReport

#: Most resize records kept in status.resizes (the schema's bound).
MAX_RESIZES = 20


def set_condition(
    conditions: list[Condition],
    *,
    type: str,
    status: bool,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """``conditions`` with ``type`` set; its transition time is kept when its status did not change."""
    value = "True" if status else "False"
    old = next((c for c in conditions if c.type == type), None)
    since = old.last_transition_time if old is not None and old.status == value else now
    new = Condition(
        type=type,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    if old is None:
        return [*conditions, new]
    return [new if c.type == type else c for c in conditions]


_TRAINING = (JobPhase.RUNNING, JobPhase.RESCALING)


def _was_training(prior: TrainingJobStatus) -> bool:
    """Running or Rescaling, or Pending below minReplicas after it trained (waiting to go on).

    Without the last case a job that fell below its minimum would record going down but never
    coming back: its history would end at the smaller size.
    """
    if prior.phase in _TRAINING:
        return True
    running = next((c for c in prior.conditions or [] if c.type == ConditionType.RUNNING), None)
    return prior.phase is JobPhase.PENDING and running is not None and running.reason == Reason.BELOW_MIN_REPLICAS


def count_workers(pods_ready: int, *, report: ProgressReport | None, prior: TrainingJobStatus) -> tuple[int, int]:
    """(ready, unhealthy): worker pods training, and pods Running but out of the driver's quorum.

    The driver reports the pods whose group it fenced as hung and that have not trained since;
    they are ready pods that do not train. A round without a report keeps the last count.
    """
    last = (prior.workers.unhealthy or 0) if prior.workers is not None else 0
    out = min(report.groups_out if report is not None else last, pods_ready)
    return pods_ready - out, out


def _resizes(
    prior: TrainingJobStatus, decision: Decision, ready: int, now: datetime, *, hung: bool = False
) -> list[ResizeRecord] | None:
    """The history of participating workers: a record whenever a training job's ready count changes.

    ``hung``: the driver's newest drop of a group was the step watchdog's (a shrink is ``WorkerHung``).
    """
    records = list(prior.resizes or [])
    before = prior.workers.ready if prior.workers is not None and _was_training(prior) else None
    training_now = decision.phase in (*_TRAINING, JobPhase.PENDING)
    if before is not None and before != ready and training_now:
        if ready > before:
            reason = Reason.SCALED_UP
        else:
            reason = decision.resize_reason if decision.resize_reason is not None else Reason.WORKER_LOST
            if reason is Reason.SCALED_UP:  # fewer workers without a request to shrink: one was lost
                reason = Reason.WORKER_LOST
            if hung and reason is Reason.WORKER_LOST:
                reason = Reason.WORKER_HUNG
        records.append(ResizeRecord.model_validate({"time": now, "from": before, "to": ready, "reason": reason}))
    return records[-MAX_RESIZES:] or None


def compute_status(
    job: TrainingJob,
    prior: TrainingJobStatus | None,
    decision: Decision,
    observed: Observed,
    now: datetime,
    *,
    report: ProgressReport | None = None,
) -> TrainingJobStatus:
    """The status after this round; ``report`` is the driver's progress if the head answered this round."""
    prior = prior or TrainingJobStatus()
    spec, generation = job.spec, job.metadata.generation
    phase = decision.phase
    conditions = list(prior.conditions or [])

    def put(kind: ConditionType, holds: bool, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(
            conditions, type=kind.value, status=holds, reason=reason, message=message, now=now, generation=generation
        )

    if not phase.is_terminal or prior.phase != phase:
        if observed.pods or any(c.type == ConditionType.CREATED for c in conditions):
            put(ConditionType.CREATED, True, Reason.CREATED, "the operator created the job's pods")
        running = phase in (JobPhase.RUNNING, JobPhase.RESCALING)
        put(ConditionType.RUNNING, running, decision.reason, decision.message)
        put(ConditionType.RESCALING, phase is JobPhase.RESCALING, decision.reason, decision.message)
        put(ConditionType.SUSPENDED, phase is JobPhase.SUSPENDED, decision.reason, decision.message)
        blocked = [p for p in observed.workers if p.active and p.unschedulable]
        if blocked or any(c.type == ConditionType.SCALE_UP_BLOCKED for c in conditions):
            if blocked:
                message = f"pod {blocked[0].name} cannot be scheduled: {blocked[0].unschedulable}"
                put(ConditionType.SCALE_UP_BLOCKED, True, Reason.UNSCHEDULABLE, message)
            else:
                put(ConditionType.SCALE_UP_BLOCKED, False, Reason.WORKERS_READY, "every worker pod is placed")
        if phase is JobPhase.SUCCEEDED:
            put(ConditionType.SUCCEEDED, True, decision.reason, decision.message)
        if phase is JobPhase.FAILED:
            put(ConditionType.FAILED, True, decision.reason, decision.message)
        apply_checkpoint_condition(conditions, report, put)

    low = spec.elastic.min_replicas if spec.elastic else spec.replicas
    high = spec.elastic.max_replicas if spec.elastic else spec.replicas
    ready, unhealthy = count_workers(observed.ready_workers, report=report, prior=prior)
    hung = report is not None and report.groups_out > 0 and report.groups_out_reason == Reason.WORKER_HUNG
    progress = progress_from(report) if report is not None else prior.progress or ProgressStatus()
    exported = export_from(report) if report is not None else None
    return TrainingJobStatus(
        phase=phase,
        conditions=conditions,
        workers=WorkersStatus(
            desired=spec.replicas,
            ready=ready,
            min=low,
            max=high,
            world_size=ready * spec.accelerators_per_worker,
            unhealthy=unhealthy or None,
        ),
        progress=progress.model_copy(update={"total_steps": spec.trainer.steps}),
        export=exported or prior.export,
        restarts=decision.restarts,
        resizes=_resizes(prior, decision, ready, now, hung=hung),
        start_time=decision.start_time,
        completion_time=decision.completion_time,
        selector=worker_selector(job.metadata.name or ""),
        observed_generation=generation,
    )


def progress_from(report: ProgressReport) -> ProgressStatus:
    """status.progress from the driver's report, rounded for `kubectl get tj` (4 decimals of loss, whole tokens/s)."""
    return ProgressStatus(
        step=report.step,
        loss=round(report.loss, 4) if report.loss is not None else None,
        tokens_per_second=round(report.tokens_per_second) if report.tokens_per_second is not None else None,
        last_checkpoint_step=report.last_checkpoint_step,
        warnings=list(report.warnings) or None,
    )


def export_from(report: ProgressReport) -> ExportStatus | None:
    """status.export from the driver's report, once the head has written the model."""
    if report.export_path is None or report.export_step is None:
        return None
    return ExportStatus(path=report.export_path, step=report.export_step)


def transition_notes(
    prior: TrainingJobStatus | None, decision: Decision, new: TrainingJobStatus | None = None
) -> tuple[Note, ...]:
    """Events for this round: the decision's own, one for a phase change, one per warning of the driver's
    not in the prior status (TrainerWarning), and one when the new status says a worker cannot be placed
    (ScaleUpBlocked turned True), with the scheduler's message."""
    notes = list(decision.notes)
    before = prior.phase if prior is not None else None
    if before != decision.phase:
        kind = "Warning" if decision.phase is JobPhase.FAILED else "Normal"
        origin = before.value if before is not None else "new"
        notes.append(Note(kind, decision.reason, f"{origin} -> {decision.phase.value}: {decision.message}"))
    seen = set((prior.progress.warnings if prior is not None and prior.progress else None) or [])
    for warning in (new.progress.warnings if new is not None and new.progress else None) or []:
        if warning not in seen:
            notes.append(Note("Warning", Reason.TRAINER_WARNING, warning))
    notes += [Note(kind, reason, message) for kind, reason, message in checkpoint_notes(prior, new)]
    blocked = _true_condition(new, ConditionType.SCALE_UP_BLOCKED)
    if blocked is not None and _true_condition(prior, ConditionType.SCALE_UP_BLOCKED) is None:
        notes.append(Note("Warning", Reason.UNSCHEDULABLE, blocked.message or "a worker pod cannot be scheduled"))
    return tuple(notes)


def _true_condition(status: TrainingJobStatus | None, kind: ConditionType) -> Condition | None:
    conditions = status.conditions or [] if status is not None else []
    return next((c for c in conditions if c.type == kind.value and c.status == "True"), None)


def invalid_status(
    prior: TrainingJobStatus | None, message: str, *, now: datetime, generation: int | None
) -> TrainingJobStatus:
    """Status of a job whose spec cannot run: Failed, reason InvalidSpec, the parser's message."""
    prior = prior or TrainingJobStatus()
    conditions = set_condition(
        list(prior.conditions or []),
        type=ConditionType.FAILED.value,
        status=True,
        reason=Reason.INVALID_SPEC,
        message=message,
        now=now,
        generation=generation,
    )
    return prior.model_copy(
        update={
            "phase": JobPhase.FAILED,
            "conditions": conditions,
            "completion_time": prior.completion_time or now,
            "observed_generation": generation,
        }
    )
