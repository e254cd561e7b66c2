"""The job's lifecycle in one place: ``decide(job, prior status, observed pods, now) -> Decision``.

Pure: time is passed in, nothing is read or written here. The handler applies the decision's
actions, then writes the status computed from it (``reconcile.status``) once, if it changed.

The rules, in order:
1. A finished job (Succeeded, Failed) only cleans up its workers and, after ttlSecondsAfterFinished,
   deletes itself.
2. ``runPolicy.suspend``: every pod is deleted, the job is Suspended; resuming starts over from step 1
   of creation and resets startTime (the protocol Kueue expects).
3. ``activeDeadlineSeconds`` past since startTime: Failed (DeadlineExceeded).
4. The head (driver) Succeeded: the job Succeeded.
5. Failed pods are judged (``reconcile.failures``): application failures count against
   backoffLimit, infrastructure losses never do. A failed head restarts the whole Ray cluster
   (all pods deleted, recreated next round); a failed worker is replaced alone.
6. Missing objects are created (Service, head, workers 0..replicas-1); workers beyond replicas
   are deleted (kubectl scale down).
7. Phase: Running when the head runs and enough workers are ready (exactly replicas, or at least
   elastic.minReplicas), Rescaling while the ready count differs from replicas, else Pending.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from elastrain_operator.api import JobPhase, Reason, RestartCounts, Role, TrainingJob, TrainingJobStatus
from elastrain_operator.reconcile.failures import Blame, Verdict, failed_pods, judge
from elastrain_operator.reconcile.observed import Observed


@dataclass(frozen=True)
class CreateService:
    """Create the head's headless Service."""


@dataclass(frozen=True)
class CreatePod:
    role: Role
    index: int


@dataclass(frozen=True)
class DeletePod:
    name: str
    why: str


@dataclass(frozen=True)
class DeleteJob:
    """ttlSecondsAfterFinished has passed: delete the TrainingJob (its pods go with it)."""


Action = CreateService | CreatePod | DeletePod | DeleteJob


@dataclass(frozen=True)
class Note:
    """An Event to record: something happened this round."""

    type: str  # "Normal" or "Warning"
    reason: Reason
    message: str


@dataclass(frozen=True)
class Decision:
    phase: JobPhase
    reason: Reason
    message: str
    actions: tuple[Action, ...] = ()
    restarts: RestartCounts = field(default_factory=RestartCounts)
    start_time: datetime | None = None
    completion_time: datetime | None = None
    notes: tuple[Note, ...] = ()


def needed_workers(job: TrainingJob) -> int:
    """Fewest ready workers the job trains with."""
    spec = job.spec
    return spec.elastic.min_replicas if spec.elastic is not None else spec.replicas


def _delete_all(observed: Observed, why: str, *, keep_failed: bool = False) -> tuple[Action, ...]:
    return tuple(
        DeletePod(p.name, why)
        for p in observed.pods
        if not p.terminating and not (keep_failed and p.phase in ("Failed", "Succeeded"))
    )


def _finished_reason(prior: TrainingJobStatus) -> tuple[Reason, str]:
    for cond in prior.conditions or []:
        if cond.type == prior.phase and cond.status == "True" and cond.reason:
            try:
                return Reason(cond.reason), cond.message or ""
            except ValueError:
                break
    return (Reason.SUCCEEDED if prior.phase is JobPhase.SUCCEEDED else Reason.APPLICATION_ERROR), ""


def decide(job: TrainingJob, prior: TrainingJobStatus | None, observed: Observed, now: datetime) -> Decision:
    """What to do next for ``job`` and which phase it is in; see the module docstring for the rules."""
    prior = prior or TrainingJobStatus()
    spec, policy = job.spec, job.spec.run_policy
    restarts = prior.restarts or RestartCounts()
    start, completion = prior.start_time, prior.completion_time

    # 1. Finished: clean up, maybe delete the job after its TTL.
    if prior.phase is not None and prior.phase.is_terminal:
        reason, message = _finished_reason(prior)
        actions: tuple[Action, ...] = tuple(DeletePod(p.name, "job finished") for p in observed.workers if p.active)
        ttl = policy.ttl_seconds_after_finished
        if ttl is not None and completion is not None and now >= completion + timedelta(seconds=ttl):
            actions += (DeleteJob(),)
        return Decision(prior.phase, reason, message, actions, restarts, start, completion)

    # 2. Suspended: no pods; the deadline clock stops.
    if policy.suspend:
        return Decision(
            JobPhase.SUSPENDED,
            Reason.SUSPENDED,
            "runPolicy.suspend is true: all pods deleted; set it to false to resume from the last checkpoint",
            _delete_all(observed, "job suspended"),
            restarts,
            start_time=None,
        )
    start = start or now

    # 3. Deadline.
    deadline = policy.active_deadline_seconds
    if deadline is not None and now >= start + timedelta(seconds=deadline):
        return Decision(
            JobPhase.FAILED,
            Reason.DEADLINE_EXCEEDED,
            f"the job ran longer than runPolicy.activeDeadlineSeconds ({deadline} s); raise it or unset it",
            _delete_all(observed, "deadline exceeded", keep_failed=True),
            restarts,
            start,
            now,
        )

    # 4. The driver finished.
    head = observed.head
    if head is not None and head.phase == "Succeeded":
        return Decision(
            JobPhase.SUCCEEDED,
            Reason.SUCCEEDED,
            f"the driver in pod {head.name} completed",
            tuple(DeletePod(p.name, "job succeeded") for p in observed.workers if p.active),
            restarts,
            start,
            now,
        )

    # 5. Failures.
    actions = ()
    notes: list[Note] = []
    application, infrastructure = restarts.application, restarts.infrastructure
    fatal: tuple[Reason, str] | None = None
    for failure in (judge(p, policy) for p in failed_pods(observed.pods)):
        if failure.blame is Blame.APPLICATION:
            application += 1
        elif failure.pod.role is Role.HEAD:
            infrastructure += 1
        if failure.verdict is Verdict.FAIL_JOB:
            fatal = (Reason.APPLICATION_ERROR, failure.detail)
        elif application > policy.backoff_limit:
            fatal = (
                Reason.BACKOFF_LIMIT_EXCEEDED,
                f"{failure.detail}; that is {application} application failures, more than "
                f"runPolicy.backoffLimit {policy.backoff_limit}; fix the error or raise backoffLimit",
            )
        reason = Reason.APPLICATION_ERROR if failure.blame is Blame.APPLICATION else Reason.WORKER_LOST
        notes.append(Note("Warning", reason, failure.detail))
        if failure.pod.role is Role.HEAD:
            actions += _delete_all(observed, "driver failed: restarting the Ray cluster from the last checkpoint")
        else:
            actions += (DeletePod(failure.pod.name, "replacing a failed worker"),)
    restarts = RestartCounts(application=application, infrastructure=infrastructure)
    if fatal is not None:
        return Decision(
            JobPhase.FAILED,
            fatal[0],
            fatal[1],
            _delete_all(observed, "job failed", keep_failed=True),
            restarts,
            start,
            now,
            tuple(notes),
        )

    # 6. Create what is missing, remove what is beyond replicas.
    doomed = {a.name for a in actions if isinstance(a, DeletePod)}
    if not observed.service_exists:
        actions += (CreateService(),)
    if head is None:
        actions += (CreatePod(Role.HEAD, 0),)
    present = {p.index for p in observed.workers}
    actions += tuple(CreatePod(Role.WORKER, i) for i in range(spec.replicas) if i not in present)
    actions += tuple(
        DeletePod(p.name, f"scaled down to {spec.replicas} workers")
        for p in observed.workers
        if p.index >= spec.replicas and not p.terminating and p.name not in doomed
    )

    # 7. Phase.
    ready, needed = observed.ready_workers, needed_workers(job)
    head_runs = head is not None and head.active and head.phase == "Running" and head.name not in doomed
    if head_runs and ready >= needed:
        if ready == spec.replicas:
            phase, reason = JobPhase.RUNNING, Reason.WORKERS_READY
            message = f"{ready}/{spec.replicas} workers ready"
        else:
            phase = JobPhase.RESCALING
            reason = Reason.SCALED_UP if ready < spec.replicas else Reason.SCALED_DOWN
            message = f"{ready} workers ready, moving to {spec.replicas}"
    else:
        phase = JobPhase.PENDING
        unschedulable = [p for p in observed.pods if p.active and p.unschedulable]
        if unschedulable:
            reason = Reason.UNSCHEDULABLE
            message = f"pod {unschedulable[0].name} cannot be scheduled: {unschedulable[0].unschedulable}"
        elif prior.phase in (JobPhase.RUNNING, JobPhase.RESCALING):
            reason = Reason.BELOW_MIN_REPLICAS
            message = f"{ready} workers ready, fewer than the {needed} needed; waiting for capacity"
        else:
            reason = Reason.CREATED
            message = f"waiting for the head and {needed} workers ({ready} ready)"
    return Decision(phase, reason, message, actions, restarts, start, None, tuple(notes))
