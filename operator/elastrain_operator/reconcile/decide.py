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
   backoffLimit, infrastructure losses never do. Pods whose node is NotReady or deleted are lost
   (infrastructure, Event WorkerLost naming pod and node). A failed or lost head restarts the whole
   Ray cluster from the last checkpoint (all pods replaced); a failed or lost worker is replaced
   alone while the others keep training.
6. Missing objects are created at once (NetworkPolicy, Service with the Secret and the
   PodDisruptionBudget, head, workers 0..replicas-1): a replacement gets the next attempt number and
   a name of its own, since the pod it replaces may stay Terminating while its node is unreachable.
   Workers beyond replicas are deleted (kubectl scale down), gracefully: the round holds the deletion
   until the driver has let their groups go (``reconcile.leave``).
7. Phase: Running when the head runs and enough workers are ready (at least elastic.minReplicas,
   or exactly replicas) and none is on its way; Rescaling while workers start or stop (a worker
   that cannot be scheduled is not on its way: the job runs at the smaller size, and the status
   says ScaleUpBlocked); below minReplicas a running job stays Rescaling for
   elastic.belowMinGraceSeconds, then waits in Pending (BelowMinReplicas), never Failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from elastrain_operator.api import JobPhase, Reason, RestartCounts, Role, TrainingJob, TrainingJobStatus
from elastrain_operator.reconcile.failures import Blame, Verdict, failed_pods, judge
from elastrain_operator.reconcile.observed import Observed, ObservedPod


@dataclass(frozen=True)
class CreateService:
    """Create the head's headless Service."""


@dataclass(frozen=True)
class CreateRayAuthSecret:
    """Create the Secret with the job's Ray token (with the Service: the operator never reads Secrets back)."""


@dataclass(frozen=True)
class CreateNetworkPolicy:
    """Create the NetworkPolicy that admits only the job's own pods (and the operator to progress)."""


@dataclass(frozen=True)
class CreateDisruptionBudget:
    """Create the PodDisruptionBudget that lets evictions take workers down to the minimum (with the Service)."""


@dataclass(frozen=True)
class CreatePod:
    role: Role
    index: int
    attempt: int = 0


@dataclass(frozen=True)
class DeletePod:
    name: str
    why: str
    graceful: bool = False
    """A scale-down: the driver lets the pod's group go first (``reconcile.leave``)."""


@dataclass(frozen=True)
class DeleteJob:
    """ttlSecondsAfterFinished has passed: delete the TrainingJob (its pods go with it)."""


Action = (
    CreateService
    | CreateRayAuthSecret
    | CreateNetworkPolicy
    | CreateDisruptionBudget
    | CreatePod
    | DeletePod
    | DeleteJob
)


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
    resize_reason: Reason | None = None
    """Why the number of ready workers changes this round, if it does (for status.resizes)."""
    lost: tuple[ObservedPod, ...] = ()
    """Pods found lost (node NotReady or deleted) this round; replaced in the same round."""


_RESTART = "driver lost: restarting the Ray cluster from the last checkpoint"


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
        cleanup: tuple[Action, ...] = tuple(DeletePod(p.name, "job finished") for p in observed.workers if p.active)
        ttl = policy.ttl_seconds_after_finished
        if ttl is not None and completion is not None and now >= completion + timedelta(seconds=ttl):
            cleanup += (DeleteJob(),)
        return Decision(prior.phase, reason, message, cleanup, restarts, start, completion)

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

    # 5. Failures and losses.
    actions: tuple[Action, ...] = ()
    notes: list[Note] = []
    application, infrastructure = restarts.application, restarts.infrastructure
    fatal: tuple[Reason, str] | None = None
    restart_cluster = False
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
        restart_cluster |= failure.pod.role is Role.HEAD
        why = "replacing a failed worker" if failure.pod.role is Role.WORKER else _RESTART
        actions += (DeletePod(failure.pod.name, why),)
    lost = [p for p in observed.pods if p.lost]
    for pod in lost:
        if pod.role is Role.HEAD:
            infrastructure += 1
            restart_cluster = True
            notes.append(
                Note(
                    "Warning",
                    Reason.NODE_LOST,
                    f"head pod {pod.name} lost: {pod.node_lost}; "
                    "recreating it, training restarts from the last checkpoint",
                )
            )
        else:
            notes.append(
                Note(
                    "Warning",
                    Reason.WORKER_LOST,
                    f"worker pod {pod.name} lost: {pod.node_lost}; replacing it while the other workers keep training",
                )
            )
        actions += (DeletePod(pod.name, "replacing a lost worker" if pod.role is Role.WORKER else _RESTART),)
    live_workers = [p for p in observed.workers if p.active and not p.lost and p.phase != "Failed"]
    if not restart_cluster and any(p.role is Role.WORKER for p in lost) and not live_workers:
        # Every worker gone at once: training resumes from the last checkpoint. A restart of the whole
        # cluster (head failed or lost too) is already counted once above.
        infrastructure += 1
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
    if restart_cluster:
        doomed_now = {a.name for a in actions if isinstance(a, DeletePod)}
        actions += tuple(
            a for a in _delete_all(observed, _RESTART) if isinstance(a, DeletePod) and a.name not in doomed_now
        )

    # 6. Create what is missing (at once, under new names), remove what is beyond replicas.
    doomed = {a.name for a in actions if isinstance(a, DeletePod)}

    def holds(role: Role, index: int) -> bool:
        return any(
            p.role is role
            and p.index == index
            and not p.terminating
            and p.name not in doomed
            and p.phase not in ("Succeeded",)
            for p in observed.pods
        )

    if not observed.network_policy_exists:
        actions += (CreateNetworkPolicy(),)
    if not observed.service_exists:
        actions += (CreateRayAuthSecret(), CreateDisruptionBudget(), CreateService())
    if not holds(Role.HEAD, 0):
        actions += (CreatePod(Role.HEAD, 0, observed.next_attempt(Role.HEAD, 0)),)
    actions += tuple(
        CreatePod(Role.WORKER, i, observed.next_attempt(Role.WORKER, i))
        for i in range(spec.replicas)
        if not holds(Role.WORKER, i)
    )
    actions += tuple(
        DeletePod(p.name, f"scaled down to {spec.replicas} workers", graceful=True)
        for p in observed.workers
        if p.index >= spec.replicas and not p.terminating and p.name not in doomed
    )
    doomed = {a.name for a in actions if isinstance(a, DeletePod)}

    # 7. Phase.
    head = observed.head_live(doomed)
    workers = [p for p in observed.workers if p.active and p.name not in doomed and not p.lost]
    ready = sum(1 for p in workers if p.phase == "Running" and p.ready)
    blocked = [p for p in workers if p.unschedulable]
    starting = [p for p in workers if not (p.phase == "Running" and p.ready) and not p.unschedulable]
    needed = needed_workers(job)
    before = prior.workers.desired if prior.workers is not None else spec.replicas
    if lost or notes:
        resize_reason = Reason.WORKER_LOST
    elif spec.replicas < before or any(p.active and p.index >= spec.replicas for p in observed.workers):
        # Workers beyond replicas: a scale-down still under way (its pods wait for their groups to leave).
        resize_reason = Reason.SCALED_DOWN
    else:
        resize_reason = Reason.SCALED_UP
    head_runs = head is not None and head.phase == "Running"
    was_running = prior.phase in (JobPhase.RUNNING, JobPhase.RESCALING)
    if head_runs and ready >= needed:
        if starting or ready > spec.replicas:
            phase, reason = JobPhase.RESCALING, resize_reason
            message = f"{ready} workers ready, moving to {spec.replicas}"
        else:
            phase, reason = JobPhase.RUNNING, Reason.WORKERS_READY
            message = f"{ready}/{spec.replicas} workers ready"
            if blocked:
                message += f"; {len(blocked)} waiting for capacity (see condition ScaleUpBlocked)"
    elif head_runs and was_running and not _below_min_too_long(job, prior, now):
        phase, reason = JobPhase.RESCALING, Reason.BELOW_MIN_REPLICAS
        message = f"{ready} workers ready, fewer than the {needed} needed; waiting for replacements"
    else:
        phase = JobPhase.PENDING
        unschedulable = [p for p in observed.pods if p.active and p.unschedulable and p.name not in doomed]
        if was_running or (prior.phase is JobPhase.PENDING and _reason_of(prior) == Reason.BELOW_MIN_REPLICAS):
            reason = Reason.BELOW_MIN_REPLICAS
            message = f"{ready} workers ready, fewer than the {needed} needed; waiting for capacity"
            if unschedulable:
                message += f" (pod {unschedulable[0].name}: {unschedulable[0].unschedulable})"
        elif unschedulable:
            reason = Reason.UNSCHEDULABLE
            message = f"pod {unschedulable[0].name} cannot be scheduled: {unschedulable[0].unschedulable}"
        else:
            reason = Reason.CREATED
            message = f"waiting for the head and {needed} workers ({ready} ready)"
    if prior.phase is JobPhase.SUSPENDED:
        notes.append(Note("Normal", Reason.RESUMED, "runPolicy.suspend is false: pods recreated"))
    return Decision(phase, reason, message, actions, restarts, start, None, tuple(notes), resize_reason, tuple(lost))


def _reason_of(status: TrainingJobStatus) -> str | None:
    """The reason of the condition that tells the phase (Running for Running/Rescaling/Pending)."""
    for cond in status.conditions or []:
        if cond.type == "Running":
            return cond.reason
    return None


def _below_min_too_long(job: TrainingJob, prior: TrainingJobStatus, now: datetime) -> bool:
    """Below minReplicas for longer than elastic.belowMinGraceSeconds (0 without elastic)."""
    grace = job.spec.elastic.below_min_grace_seconds if job.spec.elastic is not None else 0
    if prior.phase is not JobPhase.RESCALING or _reason_of(prior) != Reason.BELOW_MIN_REPLICAS:
        return grace == 0
    since = next((c.last_transition_time for c in prior.conditions or [] if c.type == "Rescaling"), None)
    # A job already Rescaling (workers starting) when it fell below its minimum: the Rescaling condition
    # is older than the fall, which status.resizes recorded (from at least the minimum to below it).
    needed = needed_workers(job)
    falls = [r.time for r in prior.resizes or [] if r.from_ >= needed > r.to]
    if falls and (since is None or falls[-1] > since):
        since = falls[-1]
    return since is None or now >= since + timedelta(seconds=grace)
