"""The lifecycle table: ``decide(job, prior status, observed pods, now)``, one scenario per row, time passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from elastrain_operator.api import (
    Condition,
    JobPhase,
    Reason,
    ResizeRecord,
    RestartCounts,
    Role,
    RunPolicy,
    TrainingJobStatus,
    WorkersStatus,
)
from elastrain_operator.reconcile.decide import (
    CreateDisruptionBudget,
    CreateNetworkPolicy,
    CreatePod,
    CreateRayAuthSecret,
    CreateService,
    DeleteJob,
    DeletePod,
    Note,
    decide,
    needed_workers,
)
from elastrain_operator.reconcile.failures import MAX_WORDS, Blame, Verdict, failed_pods, judge, last_words
from elastrain_operator.reconcile.observed import Observed, ObservedPod

pytestmark = pytest.mark.unit

#: Fixtures of conftest.py (fixtures, not imports: tests/unit is not a package).
MakeJob = Callable[..., Any]
MakePod = Callable[..., ObservedPod]
Pods = Callable[[MakePod], list[ObservedPod]]

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
H, W = Role.HEAD, Role.WORKER
#: Why every pod goes when the driver (head) fails or is lost.
RESTART = "driver lost: restarting the Ray cluster from the last checkpoint"


def status(
    phase: JobPhase | None = JobPhase.RUNNING, *, app: int = 0, infra: int = 0, **fields: Any
) -> TrainingJobStatus:
    fields.setdefault("start_time", T0)
    return TrainingJobStatus(phase=phase, restarts=RestartCounts(application=app, infrastructure=infra), **fields)


def seen(pods: tuple[ObservedPod, ...], service: bool = True) -> Observed:
    """What the operator sees: ``pods``, and the Service and NetworkPolicy (both there unless told)."""
    return Observed(pods, service_exists=service, network_policy_exists=service)


def cluster(p: MakePod, workers: int, **head: Any) -> list[ObservedPod]:
    """A head (Running unless told otherwise) and ready workers 0..workers-1."""
    return [p("head", **head), *(p("worker", i) for i in range(workers))]


@dataclass(frozen=True)
class Case:
    id: str
    job: dict[str, Any]
    prior: TrainingJobStatus | None
    pods: Pods
    phase: JobPhase
    reason: Reason
    actions: tuple[object, ...] = ()
    restarts: tuple[int, int] = (0, 0)
    service: bool = True
    now: datetime = T0 + timedelta(minutes=5)
    start: datetime | None = T0
    completion: datetime | None = None
    notes: tuple[tuple[str, Reason], ...] = ()
    message: str = ""
    resize: Reason | None = None
    """decision.resize_reason, checked when given."""


NOW = T0 + timedelta(minutes=5)

CASES = [
    # -- creation and steady state ------------------------------------------------------------------
    Case(
        "new-job-creates-service-head-and-workers",
        {"replicas": 3},
        None,
        lambda p: [],
        JobPhase.PENDING,
        Reason.CREATED,
        (
            CreateNetworkPolicy(),
            CreateRayAuthSecret(),
            CreateDisruptionBudget(),
            CreateService(),
            CreatePod(H, 0),
            CreatePod(W, 0),
            CreatePod(W, 1),
            CreatePod(W, 2),
        ),
        service=False,
        start=NOW,
        message="waiting for the head and 3 workers (0 ready)",
    ),
    Case(
        "partly-created-job-creates-only-what-is-missing",
        {"replicas": 3},
        status(JobPhase.PENDING),
        lambda p: [p("head", phase="Pending"), p("worker", 1, phase="Pending")],
        JobPhase.PENDING,
        Reason.CREATED,
        (CreatePod(W, 0), CreatePod(W, 2)),
    ),
    Case(
        "all-ready-is-running",
        {"replicas": 3},
        status(JobPhase.PENDING),
        lambda p: cluster(p, 3),
        JobPhase.RUNNING,
        Reason.WORKERS_READY,
        message="3/3 workers ready",
    ),
    Case(
        "head-not-ready-yet-is-pending",
        {"replicas": 2},
        status(JobPhase.PENDING),
        lambda p: cluster(p, 2, phase="Pending"),
        JobPhase.PENDING,
        Reason.CREATED,
    ),
    Case(
        "fewer-ready-but-at-least-min-is-rescaling",
        {"replicas": 3, "elastic": (2, 4)},
        status(),
        lambda p: [*cluster(p, 2), p("worker", 2, phase="Pending")],
        JobPhase.RESCALING,
        Reason.SCALED_UP,
        message="2 workers ready, moving to 3",
    ),
    Case(
        "fewer-ready-than-min-after-running-stays-rescaling-within-the-grace",
        {"replicas": 3, "elastic": (2, 4)},
        status(),
        lambda p: [*cluster(p, 1), p("worker", 1, phase="Pending"), p("worker", 2, phase="Pending")],
        JobPhase.RESCALING,
        Reason.BELOW_MIN_REPLICAS,
        message="1 workers ready, fewer than the 2 needed; waiting for replacements",
    ),
    Case(
        "fewer-ready-than-min-after-running-without-grace-is-pending-below-min",
        {"replicas": 3, "elastic": (2, 4, 0)},
        status(),
        lambda p: [*cluster(p, 1), p("worker", 1, phase="Pending"), p("worker", 2, phase="Pending")],
        JobPhase.PENDING,
        Reason.BELOW_MIN_REPLICAS,
        message="1 workers ready, fewer than the 2 needed; waiting for capacity",
    ),
    Case(
        "fixed-size-job-below-its-size-after-running-is-pending-at-once",
        {"replicas": 3},
        status(),
        lambda p: [*cluster(p, 2), p("worker", 2, phase="Pending")],
        JobPhase.PENDING,
        Reason.BELOW_MIN_REPLICAS,
        message="2 workers ready, fewer than the 3 needed; waiting for capacity",
    ),
    Case(
        "starting-job-below-min-is-pending-not-rescaling",
        {"replicas": 3, "elastic": (2, 4)},
        status(JobPhase.PENDING),
        lambda p: [*cluster(p, 1), p("worker", 1, phase="Pending"), p("worker", 2, phase="Pending")],
        JobPhase.PENDING,
        Reason.CREATED,
        message="waiting for the head and 2 workers (1 ready)",
    ),
    Case(
        "fixed-size-job-needs-every-worker",
        {"replicas": 3},
        status(JobPhase.PENDING),
        lambda p: [*cluster(p, 2), p("worker", 2, phase="Running", ready=False)],
        JobPhase.PENDING,
        Reason.CREATED,
    ),
    Case(
        # Decided on the pods as they are: the new workers start next round (then Rescaling).
        "scale-up-creates-the-next-indices-and-trains-on-meanwhile",
        {"replicas": 4, "elastic": (1, 4)},
        status(workers=WorkersStatus(desired=2, ready=2)),
        lambda p: cluster(p, 2),
        JobPhase.RUNNING,
        Reason.WORKERS_READY,
        (CreatePod(W, 2, 0), CreatePod(W, 3, 0)),
        message="2/4 workers ready",
        resize=Reason.SCALED_UP,
    ),
    Case(
        "scaled-up-workers-starting-is-rescaling",
        {"replicas": 4, "elastic": (1, 4)},
        status(workers=WorkersStatus(desired=4, ready=2)),
        lambda p: [*cluster(p, 2), p("worker", 2, phase="Pending"), p("worker", 3, phase="Running", ready=False)],
        JobPhase.RESCALING,
        Reason.SCALED_UP,
        message="2 workers ready, moving to 4",
        resize=Reason.SCALED_UP,
    ),
    Case(
        "scale-down-deletes-the-highest-indices",
        {"replicas": 2, "elastic": (1, 4)},
        status(workers=WorkersStatus(desired=4, ready=4)),
        lambda p: cluster(p, 4),
        JobPhase.RUNNING,
        Reason.WORKERS_READY,
        (
            DeletePod("demo-worker-2", "scaled down to 2 workers", graceful=True),
            DeletePod("demo-worker-3", "scaled down to 2 workers", graceful=True),
        ),
        message="2/2 workers ready",
        resize=Reason.SCALED_DOWN,
    ),
    Case(
        "more-ready-than-replicas-is-rescaling-down",
        {"replicas": 2, "elastic": (1, 4)},
        status(workers=WorkersStatus(desired=4, ready=4)),
        lambda p: [*cluster(p, 2), p("worker", 1, attempt=1)],
        JobPhase.RESCALING,
        Reason.SCALED_DOWN,
        message="3 workers ready, moving to 2",
        resize=Reason.SCALED_DOWN,
    ),
    Case(
        # The pods waited for their groups to leave (reconcile.leave): desired already says 2 when they go.
        "a-held-scale-down-is-still-a-scale-down",
        {"replicas": 2, "elastic": (1, 4)},
        status(workers=WorkersStatus(desired=2, ready=4)),
        lambda p: cluster(p, 4),
        JobPhase.RUNNING,
        Reason.WORKERS_READY,
        (
            DeletePod("demo-worker-2", "scaled down to 2 workers", graceful=True),
            DeletePod("demo-worker-3", "scaled down to 2 workers", graceful=True),
        ),
        message="2/2 workers ready",
        resize=Reason.SCALED_DOWN,
    ),
    Case(
        "scale-down-skips-pods-already-terminating",
        {"replicas": 1, "elastic": (1, 4)},
        status(workers=WorkersStatus(desired=3, ready=3)),
        lambda p: [*cluster(p, 2), p("worker", 2, terminating=True)],
        JobPhase.RUNNING,
        Reason.WORKERS_READY,
        (DeletePod("demo-worker-1", "scaled down to 1 workers", graceful=True),),
        message="1/1 workers ready",
        resize=Reason.SCALED_DOWN,
    ),
    Case(
        "terminating-pods-are-replaced-at-once-under-new-names",
        {"replicas": 2},
        status(JobPhase.PENDING),
        lambda p: [p("head", terminating=True), p("worker", 0, terminating=True)],
        JobPhase.PENDING,
        Reason.CREATED,
        (CreatePod(H, 0, 1), CreatePod(W, 0, 1), CreatePod(W, 1, 0)),
        message="waiting for the head and 2 workers (0 ready)",
    ),
    Case(
        "replacement-already-there-is-not-created-twice",
        {"replicas": 2},
        status(),
        lambda p: [
            *cluster(p, 1),
            p("worker", 1, terminating=True, node_lost="node gpu-node-1 NotReady (Unknown)"),
            p("worker", 1, attempt=1, phase="Pending"),
        ],
        JobPhase.PENDING,
        Reason.BELOW_MIN_REPLICAS,
        message="1 workers ready, fewer than the 2 needed; waiting for capacity",
    ),
    Case(
        "next-attempt-is-one-past-every-pod-seen-in-any-state",
        {"replicas": 1},
        status(),
        lambda p: [
            p("head"),
            p("worker", 0, phase="Failed", exit_code=143, terminating=True),
            p("worker", 0, attempt=3, phase="Succeeded"),
            p("worker", 0, attempt=2, terminating=True),
        ],
        JobPhase.PENDING,
        Reason.BELOW_MIN_REPLICAS,
        (CreatePod(W, 0, 4),),
    ),
    Case(
        "unschedulable-pod-is-the-pending-reason",
        {"replicas": 2},
        status(JobPhase.PENDING),
        lambda p: [
            *cluster(p, 1),
            p("worker", 1, phase="Pending", unschedulable="0/4 nodes are available: 4 Insufficient nvidia.com/gpu"),
        ],
        JobPhase.PENDING,
        Reason.UNSCHEDULABLE,
        message="pod demo-worker-1 cannot be scheduled: 0/4 nodes are available: 4 Insufficient nvidia.com/gpu",
    ),
    # -- failures -----------------------------------------------------------------------------------
    Case(
        "worker-app-failure-under-on-failure-is-replaced-and-counted",
        {"replicas": 3, "elastic": (2, 3), "restart_policy": "OnFailure", "backoff_limit": 3},
        status(app=1),
        lambda p: [*cluster(p, 3)[:2], p("worker", 1, phase="Failed", exit_code=1), p("worker", 2)],
        JobPhase.RUNNING,
        Reason.WORKERS_READY,
        (DeletePod("demo-worker-1", "replacing a failed worker"), CreatePod(W, 1, 1)),
        restarts=(2, 0),
        notes=(("Warning", Reason.APPLICATION_ERROR),),
        message="2/3 workers ready",
        resize=Reason.WORKER_LOST,
    ),
    Case(
        "worker-app-failure-under-exit-code-fails-the-job",
        {"replicas": 3},
        status(),
        lambda p: [*cluster(p, 1), p("worker", 1, phase="Failed", exit_code=1, reason="Error"), p("worker", 2)],
        JobPhase.FAILED,
        Reason.APPLICATION_ERROR,
        (
            DeletePod("demo-head", "job failed"),
            DeletePod("demo-worker-0", "job failed"),
            DeletePod("demo-worker-2", "job failed"),
        ),
        restarts=(1, 0),
        completion=NOW,
        notes=(("Warning", Reason.APPLICATION_ERROR),),
        message="pod demo-worker-1 failed with exit code 1 (Error); application error, not retried "
        "(exit code 1 is not in runPolicy.retryableExitCodes)",
    ),
    Case(
        "retryable-exit-code-under-exit-code-is-retried",
        {"replicas": 2, "retryable_exit_codes": [3, 42]},
        status(),
        lambda p: [*cluster(p, 1), p("worker", 1, phase="Failed", exit_code=42)],
        JobPhase.PENDING,
        Reason.BELOW_MIN_REPLICAS,
        (DeletePod("demo-worker-1", "replacing a failed worker"), CreatePod(W, 1, 1)),
        restarts=(1, 0),
        notes=(("Warning", Reason.APPLICATION_ERROR),),
    ),
    Case(
        "never-fails-on-the-first-application-error",
        {"replicas": 1, "restart_policy": "Never", "backoff_limit": 5},
        status(),
        lambda p: [p("head"), p("worker", 0, phase="Failed", exit_code=2)],
        JobPhase.FAILED,
        Reason.APPLICATION_ERROR,
        (DeletePod("demo-head", "job failed"),),
        restarts=(1, 0),
        completion=NOW,
        notes=(("Warning", Reason.APPLICATION_ERROR),),
    ),
    Case(
        "exit-137-is-infrastructure-and-not-counted",
        {"replicas": 2, "backoff_limit": 0},
        status(app=0, infra=4),
        lambda p: [*cluster(p, 1), p("worker", 1, phase="Failed", exit_code=137, reason="OOMKilled")],
        JobPhase.PENDING,
        Reason.BELOW_MIN_REPLICAS,
        (DeletePod("demo-worker-1", "replacing a failed worker"), CreatePod(W, 1, 1)),
        restarts=(0, 4),
        notes=(("Warning", Reason.WORKER_LOST),),
        message="1 workers ready, fewer than the 2 needed; waiting for capacity",
        resize=Reason.WORKER_LOST,
    ),
    Case(
        "eviction-is-infrastructure-whatever-the-exit-code",
        {"replicas": 2, "backoff_limit": 0, "restart_policy": "Never"},
        status(),
        lambda p: [*cluster(p, 1), p("worker", 1, phase="Failed", exit_code=1, reason="Evicted")],
        JobPhase.PENDING,
        Reason.BELOW_MIN_REPLICAS,
        (DeletePod("demo-worker-1", "replacing a failed worker"), CreatePod(W, 1, 1)),
        notes=(("Warning", Reason.WORKER_LOST),),
    ),
    Case(
        "backoff-limit-exceeded-fails-the-job",
        {"replicas": 2, "restart_policy": "OnFailure", "backoff_limit": 2},
        status(app=2, infra=1),
        lambda p: [*cluster(p, 1), p("worker", 1, phase="Failed", exit_code=1)],
        JobPhase.FAILED,
        Reason.BACKOFF_LIMIT_EXCEEDED,
        (DeletePod("demo-head", "job failed"), DeletePod("demo-worker-0", "job failed")),
        restarts=(3, 1),
        completion=NOW,
        notes=(("Warning", Reason.APPLICATION_ERROR),),
    ),
    Case(
        "failure-at-the-backoff-limit-is-still-retried",
        {"replicas": 2, "restart_policy": "OnFailure", "backoff_limit": 2},
        status(app=1),
        lambda p: [*cluster(p, 1), p("worker", 1, phase="Failed", exit_code=1)],
        JobPhase.PENDING,
        Reason.BELOW_MIN_REPLICAS,
        (DeletePod("demo-worker-1", "replacing a failed worker"), CreatePod(W, 1, 1)),
        restarts=(2, 0),
        notes=(("Warning", Reason.APPLICATION_ERROR),),
    ),
    Case(
        "head-app-failure-restarts-the-whole-cluster",
        {"replicas": 2, "restart_policy": "OnFailure"},
        status(),
        lambda p: cluster(p, 2, phase="Failed", exit_code=1),
        JobPhase.PENDING,
        Reason.BELOW_MIN_REPLICAS,
        (
            *(DeletePod(n, RESTART) for n in ("demo-head", "demo-worker-0", "demo-worker-1")),
            CreatePod(H, 0, 1),
            CreatePod(W, 0, 1),
            CreatePod(W, 1, 1),
        ),
        restarts=(1, 0),
        notes=(("Warning", Reason.APPLICATION_ERROR),),
    ),
    Case(
        "head-lost-to-infrastructure-restarts-the-cluster-counted-as-infrastructure",
        {"replicas": 1, "backoff_limit": 0},
        status(infra=2),
        lambda p: cluster(p, 1, phase="Failed", reason="NodeLost"),
        JobPhase.PENDING,
        Reason.BELOW_MIN_REPLICAS,
        (*(DeletePod(n, RESTART) for n in ("demo-head", "demo-worker-0")), CreatePod(H, 0, 1), CreatePod(W, 0, 1)),
        restarts=(0, 3),
        notes=(("Warning", Reason.WORKER_LOST),),
    ),
    Case(
        "failed-pod-being-deleted-is-not-counted-again",
        {"replicas": 2, "restart_policy": "OnFailure"},
        status(app=1),
        lambda p: [*cluster(p, 1), p("worker", 1, phase="Failed", exit_code=1, terminating=True)],
        JobPhase.PENDING,
        Reason.BELOW_MIN_REPLICAS,
        (CreatePod(W, 1, 1),),
        restarts=(1, 0),
    ),
    # -- completion, deadline, suspension -------------------------------------------------------------
    Case(
        "head-succeeded-succeeds-the-job-and-deletes-workers",
        {"replicas": 2},
        status(),
        lambda p: [p("head", phase="Succeeded"), p("worker", 0), p("worker", 1, phase="Succeeded")],
        JobPhase.SUCCEEDED,
        Reason.SUCCEEDED,
        (DeletePod("demo-worker-0", "job succeeded"),),
        completion=NOW,
        message="the driver in pod demo-head completed",
    ),
    Case(
        "deadline-passed-fails-the-job",
        {"replicas": 1, "deadline": 300},
        status(),
        lambda p: cluster(p, 1),
        JobPhase.FAILED,
        Reason.DEADLINE_EXCEEDED,
        (DeletePod("demo-head", "deadline exceeded"), DeletePod("demo-worker-0", "deadline exceeded")),
        now=T0 + timedelta(seconds=300),
        completion=T0 + timedelta(seconds=300),
    ),
    Case(
        "deadline-not-yet-passed",
        {"replicas": 1, "deadline": 300},
        status(),
        lambda p: cluster(p, 1),
        JobPhase.RUNNING,
        Reason.WORKERS_READY,
        now=T0 + timedelta(seconds=299),
    ),
    Case(
        "deadline-beats-a-driver-that-succeeded-too-late",
        {"replicas": 1, "deadline": 60},
        status(),
        lambda p: [p("head", phase="Succeeded"), p("worker", 0)],
        JobPhase.FAILED,
        Reason.DEADLINE_EXCEEDED,
        (DeletePod("demo-worker-0", "deadline exceeded"),),
        completion=NOW,
    ),
    Case(
        "suspend-deletes-every-pod-and-clears-start-time",
        {"replicas": 2, "suspend": True},
        status(app=1, infra=2),
        lambda p: [*cluster(p, 1), p("worker", 1, terminating=True)],
        JobPhase.SUSPENDED,
        Reason.SUSPENDED,
        (DeletePod("demo-head", "job suspended"), DeletePod("demo-worker-0", "job suspended")),
        restarts=(1, 2),
        start=None,
    ),
    Case(
        "suspend-stops-the-deadline-clock",
        {"replicas": 1, "suspend": True, "deadline": 60},
        status(),
        lambda p: [],
        JobPhase.SUSPENDED,
        Reason.SUSPENDED,
        start=None,
        now=T0 + timedelta(hours=1),
    ),
    Case(
        "resume-recreates-everything-and-restarts-the-clock",
        {"replicas": 2, "deadline": 60},
        status(JobPhase.SUSPENDED, start_time=None),
        lambda p: [],
        JobPhase.PENDING,
        Reason.CREATED,
        (CreatePod(H, 0, 0), CreatePod(W, 0, 0), CreatePod(W, 1, 0)),
        now=T0 + timedelta(hours=1),
        start=T0 + timedelta(hours=1),
        notes=(("Normal", Reason.RESUMED),),
    ),
    # -- finished jobs --------------------------------------------------------------------------------
    Case(
        "finished-job-cleans-up-active-workers-only",
        {"replicas": 2},
        status(JobPhase.SUCCEEDED, completion_time=T0),
        lambda p: [p("head", phase="Succeeded"), p("worker", 0), p("worker", 1, phase="Failed", exit_code=1)],
        JobPhase.SUCCEEDED,
        Reason.SUCCEEDED,
        (DeletePod("demo-worker-0", "job finished"),),
        completion=T0,
    ),
    Case(
        "finished-job-past-its-ttl-is-deleted",
        {"ttl": 600},
        status(JobPhase.FAILED, completion_time=T0),
        lambda p: [],
        JobPhase.FAILED,
        Reason.APPLICATION_ERROR,
        (DeleteJob(),),
        now=T0 + timedelta(seconds=600),
        completion=T0,
    ),
    Case(
        "finished-job-within-its-ttl-is-kept",
        {"ttl": 600},
        status(JobPhase.SUCCEEDED, completion_time=T0),
        lambda p: [],
        JobPhase.SUCCEEDED,
        Reason.SUCCEEDED,
        now=T0 + timedelta(seconds=599),
        completion=T0,
    ),
    Case(
        "finished-job-without-ttl-is-kept-forever",
        {},
        status(JobPhase.SUCCEEDED, completion_time=T0),
        lambda p: [],
        JobPhase.SUCCEEDED,
        Reason.SUCCEEDED,
        now=T0 + timedelta(days=365),
        completion=T0,
    ),
    Case(
        "finished-job-ignores-suspend-and-failures",
        {"suspend": True, "restart_policy": "Never"},
        status(JobPhase.SUCCEEDED, completion_time=T0),
        lambda p: [p("head", phase="Failed", exit_code=1)],
        JobPhase.SUCCEEDED,
        Reason.SUCCEEDED,
        completion=T0,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decide(make_job: MakeJob, pod: MakePod, case: Case) -> None:
    job = make_job(**case.job).obj()
    observed = seen(tuple(case.pods(pod)), case.service)
    decision = decide(job, case.prior, observed, case.now)
    assert (decision.phase, decision.reason) == (case.phase, case.reason), decision.message
    assert decision.actions == case.actions
    assert (decision.restarts.application, decision.restarts.infrastructure) == case.restarts
    assert decision.start_time == case.start
    assert decision.completion_time == case.completion
    assert tuple((n.type, n.reason) for n in decision.notes) == case.notes
    if case.message:
        assert decision.message == case.message
    if case.resize is not None:
        assert decision.resize_reason == case.resize


def test_worker_replacement_is_created_in_the_same_round(make_job: MakeJob, pod: MakePod) -> None:
    """Round 1 deletes the failed worker and creates its replacement; round 2 counts nothing again."""
    job = make_job(replicas=2, restart_policy="OnFailure").obj()
    first = decide(
        job,
        status(),
        seen((pod("head"), pod("worker", 0), pod("worker", 1, phase="Failed", exit_code=1)), True),
        NOW,
    )
    assert first.actions == (DeletePod("demo-worker-1", "replacing a failed worker"), CreatePod(W, 1, 1))
    assert first.restarts.application == 1
    second = decide(
        job,
        status(app=first.restarts.application),
        seen(
            (
                pod("head"),
                pod("worker", 0),
                pod("worker", 1, phase="Failed", exit_code=1, terminating=True),
                pod("worker", 1, attempt=1, phase="Pending"),
            ),
            True,
        ),
        NOW + timedelta(seconds=2),
    )
    assert second.actions == ()
    assert second.restarts.application == 1
    assert second.notes == ()


# -- node loss ----------------------------------------------------------------------------------------

NOT_READY = "node gpu-node-1 NotReady (Unknown)"


def test_lost_worker_is_deleted_and_replaced_at_once_while_the_job_keeps_running(
    make_job: MakeJob, pod: MakePod
) -> None:
    job = make_job(replicas=3, elastic=(2, 3)).obj()
    lost = pod("worker", 1, node="gpu-node-1", node_lost=NOT_READY, lost_since=T0)
    observed = seen((pod("head"), pod("worker", 0), lost, pod("worker", 2)), True)
    decision = decide(job, status(workers=WorkersStatus(desired=3, ready=3)), observed, NOW)
    assert decision.actions == (DeletePod("demo-worker-1", "replacing a lost worker"), CreatePod(W, 1, 1))
    assert decision.notes == (
        Note(
            "Warning",
            Reason.WORKER_LOST,
            f"worker pod demo-worker-1 lost: {NOT_READY}; replacing it while the other workers keep training",
        ),
    )
    assert (decision.phase, decision.reason, decision.message) == (
        JobPhase.RUNNING,
        Reason.WORKERS_READY,
        "2/3 workers ready",
    )
    assert decision.lost == (lost,)
    assert decision.resize_reason is Reason.WORKER_LOST
    assert decision.restarts == RestartCounts(application=0, infrastructure=0)


def test_lost_worker_of_a_fixed_size_job_leaves_it_pending(make_job: MakeJob, pod: MakePod) -> None:
    job = make_job(replicas=2).obj()
    observed = seen((pod("head"), pod("worker", 0), pod("worker", 1, node_lost="node gpu-node-1 deleted")), True)
    decision = decide(job, status(), observed, NOW)
    assert decision.actions == (DeletePod("demo-worker-1", "replacing a lost worker"), CreatePod(W, 1, 1))
    assert (decision.phase, decision.reason, decision.message) == (
        JobPhase.PENDING,
        Reason.BELOW_MIN_REPLICAS,
        "1 workers ready, fewer than the 2 needed; waiting for capacity",
    )
    assert [n.message for n in decision.notes] == [
        "worker pod demo-worker-1 lost: node gpu-node-1 deleted; replacing it while the other workers keep training"
    ]


def test_lost_replacement_gets_the_attempt_after_every_earlier_one(make_job: MakeJob, pod: MakePod) -> None:
    job = make_job(replicas=2, elastic=(1, 2)).obj()
    observed = seen(
        (
            pod("head"),
            pod("worker", 0),
            pod("worker", 1, terminating=True, node_lost=NOT_READY),
            pod("worker", 1, attempt=1, node_lost="node gpu-node-2 NotReady (False)"),
        ),
        True,
    )
    decision = decide(job, status(), observed, NOW)
    assert decision.actions == (DeletePod("demo-worker-1-r1", "replacing a lost worker"), CreatePod(W, 1, 2))
    assert [p.name for p in decision.lost] == ["demo-worker-1-r1"]  # the Terminating one is not lost again


def test_pod_being_deleted_on_a_lost_node_is_neither_lost_nor_deleted_again(make_job: MakeJob, pod: MakePod) -> None:
    job = make_job(replicas=1).obj()
    gone = pod("worker", 0, terminating=True, node_lost=NOT_READY)
    assert gone.lost is False
    decision = decide(job, status(), seen((pod("head"), gone, pod("worker", 0, attempt=1)), True), NOW)
    assert decision.actions == ()
    assert decision.lost == ()
    assert (decision.phase, decision.reason) == (JobPhase.RUNNING, Reason.WORKERS_READY)


def test_lost_head_recreates_every_pod_and_counts_an_infrastructure_restart(make_job: MakeJob, pod: MakePod) -> None:
    job = make_job(replicas=2, elastic=(1, 2)).obj()
    head = pod("head", node="cpu-node-0", node_lost="node cpu-node-0 deleted")
    observed = seen((head, pod("worker", 0), pod("worker", 1, phase="Pending")), True)
    decision = decide(job, status(app=1, infra=2), observed, NOW)
    assert decision.actions == (
        DeletePod("demo-head", RESTART),
        DeletePod("demo-worker-0", RESTART),
        DeletePod("demo-worker-1", RESTART),
        CreatePod(H, 0, 1),
        CreatePod(W, 0, 1),
        CreatePod(W, 1, 1),
    )
    assert decision.restarts == RestartCounts(application=1, infrastructure=3)
    assert decision.notes == (
        Note(
            "Warning",
            Reason.NODE_LOST,
            "head pod demo-head lost: node cpu-node-0 deleted; "
            "recreating it, training restarts from the last checkpoint",
        ),
    )
    assert decision.lost == (head,)
    assert (decision.phase, decision.reason) == (JobPhase.PENDING, Reason.BELOW_MIN_REPLICAS)


def test_restarted_head_gets_the_next_attempt(make_job: MakeJob, pod: MakePod) -> None:
    job = make_job(replicas=1).obj()
    observed = seen(
        (pod("head", terminating=True), pod("head", attempt=1, node_lost=NOT_READY), pod("worker", 0, attempt=1)),
        True,
    )
    decision = decide(job, status(infra=1), observed, NOW)
    assert decision.actions == (
        DeletePod("demo-head-r1", RESTART),
        DeletePod("demo-worker-0-r1", RESTART),
        CreatePod(H, 0, 2),
        CreatePod(W, 0, 2),
    )
    assert decision.restarts.infrastructure == 2


def test_every_worker_lost_at_once_counts_one_infrastructure_restart(make_job: MakeJob, pod: MakePod) -> None:
    job = make_job(replicas=2, elastic=(1, 2)).obj()
    observed = seen((pod("head"), pod("worker", 0, node_lost=NOT_READY), pod("worker", 1, node_lost=NOT_READY)), True)
    decision = decide(job, status(infra=1), observed, NOW)
    assert decision.actions == (
        DeletePod("demo-worker-0", "replacing a lost worker"),
        DeletePod("demo-worker-1", "replacing a lost worker"),
        CreatePod(W, 0, 1),
        CreatePod(W, 1, 1),
    )
    assert decision.restarts == RestartCounts(application=0, infrastructure=2)
    assert [(n.type, n.reason) for n in decision.notes] == [("Warning", Reason.WORKER_LOST)] * 2
    assert (decision.phase, decision.reason) == (JobPhase.RESCALING, Reason.BELOW_MIN_REPLICAS)


def test_some_workers_lost_counts_no_restart(make_job: MakeJob, pod: MakePod) -> None:
    job = make_job(replicas=3, elastic=(1, 3)).obj()
    observed = seen(
        (pod("head"), pod("worker", 0, node_lost=NOT_READY), pod("worker", 1, node_lost=NOT_READY), pod("worker", 2)),
        True,
    )
    assert decide(job, status(infra=1), observed, NOW).restarts == RestartCounts(application=0, infrastructure=1)


def test_head_and_every_worker_lost_together_count_one_restart(make_job: MakeJob, pod: MakePod) -> None:
    """One node with the whole job on it: one restart of the Ray cluster, not two."""
    job = make_job(replicas=1).obj()
    observed = seen((pod("head", node_lost=NOT_READY), pod("worker", 0, node_lost=NOT_READY)), True)
    decision = decide(job, status(), observed, NOW)
    assert decision.restarts == RestartCounts(application=0, infrastructure=1)
    assert decision.actions == (
        DeletePod("demo-head", RESTART),
        DeletePod("demo-worker-0", "replacing a lost worker"),
        CreatePod(H, 0, 1),
        CreatePod(W, 0, 1),
    )
    assert [n.reason for n in decision.notes] == [Reason.NODE_LOST, Reason.WORKER_LOST]


@pytest.mark.parametrize(
    ("blame", "fields", "restarts"),
    [("application", {"exit_code": 1}, (1, 0)), ("infrastructure", {"reason": "Evicted"}, (0, 1))],
)
def test_failed_head_restarts_everything_whatever_the_blame(
    make_job: MakeJob, pod: MakePod, blame: str, fields: dict[str, Any], restarts: tuple[int, int]
) -> None:
    job = make_job(replicas=2, restart_policy="OnFailure").obj()
    observed = seen(
        (pod("head", phase="Failed", **fields), pod("worker", 0), pod("worker", 1, phase="Failed", exit_code=143)), True
    )
    decision = decide(job, status(), observed, NOW)
    assert decision.actions == (
        DeletePod("demo-head", RESTART),
        DeletePod("demo-worker-1", "replacing a failed worker"),
        DeletePod("demo-worker-0", RESTART),
        CreatePod(H, 0, 1),
        CreatePod(W, 0, 1),
        CreatePod(W, 1, 1),
    )
    assert (decision.restarts.application, decision.restarts.infrastructure) == restarts, blame


# -- below minReplicas: grace, then Pending ---------------------------------------------------------------


def below_min(since: datetime, phase: JobPhase = JobPhase.RESCALING) -> TrainingJobStatus:
    """A job that was training and has been below minReplicas since ``since``."""
    return status(
        phase,
        conditions=[
            Condition(type="Created", status="True", reason="JobCreated", last_transition_time=T0),
            Condition(type="Running", status="True", reason="BelowMinReplicas", last_transition_time=T0),
            Condition(type="Rescaling", status="True", reason="BelowMinReplicas", last_transition_time=since),
        ],
    )


def short(pod: MakePod) -> Observed:
    """A head and one ready worker of three; the two replacements start."""
    return seen(
        (
            pod("head"),
            pod("worker", 0),
            pod("worker", 1, attempt=1, phase="Pending"),
            pod("worker", 2, phase="Pending"),
        ),
        True,
    )


@pytest.mark.parametrize(
    ("elapsed", "phase", "message"),
    [
        (0, JobPhase.RESCALING, "1 workers ready, fewer than the 2 needed; waiting for replacements"),
        (59, JobPhase.RESCALING, "1 workers ready, fewer than the 2 needed; waiting for replacements"),
        (60, JobPhase.PENDING, "1 workers ready, fewer than the 2 needed; waiting for capacity"),
        (3600, JobPhase.PENDING, "1 workers ready, fewer than the 2 needed; waiting for capacity"),
    ],
)
def test_below_min_grace_counts_from_the_rescaling_transition(
    make_job: MakeJob, pod: MakePod, elapsed: int, phase: JobPhase, message: str
) -> None:
    job = make_job(replicas=3, elastic=(2, 3, 60)).obj()
    since = T0 + timedelta(minutes=1)
    decision = decide(job, below_min(since), short(pod), since + timedelta(seconds=elapsed))
    assert (decision.phase, decision.reason, decision.message) == (phase, Reason.BELOW_MIN_REPLICAS, message)
    assert decision.actions == ()


@pytest.mark.parametrize(
    ("records", "at", "phase"),
    [
        ([(2, 1, 10)], 600 + 59, JobPhase.RESCALING),  # fell at minute 10: the grace counts from there
        ([(2, 1, 10)], 600 + 60, JobPhase.PENDING),
        ([(3, 2, 9), (2, 1, 10), (1, 0, 10.5)], 600 + 59, JobPhase.RESCALING),  # 1 -> 0 is no new fall
        ([(1, 3, 5), (3, 1, 10)], 600 + 59, JobPhase.RESCALING),
        ([(2, 1, -5)], 59, JobPhase.RESCALING),  # a fall before the Rescaling transition: that one counts
        ([(2, 1, -5)], 60, JobPhase.PENDING),
        ([(1, 0, 10)], 600, JobPhase.PENDING),  # no fall below min (already below): Rescaling's time
    ],
)
def test_below_min_grace_counts_from_the_fall_when_the_job_was_already_rescaling(
    make_job: MakeJob, pod: MakePod, records: list[tuple[int, int, float]], at: int, phase: JobPhase
) -> None:
    """Rescaling since T0; status.resizes says when the ready count fell below minReplicas (2)."""
    job = make_job(replicas=3, elastic=(2, 3, 60)).obj()
    resizes = [
        ResizeRecord.model_validate({"time": T0 + timedelta(minutes=m), "from": a, "to": b, "reason": "WorkerLost"})
        for a, b, m in records
    ]
    prior = below_min(T0).model_copy(update={"resizes": resizes})
    assert decide(job, prior, short(pod), T0 + timedelta(seconds=at)).phase is phase


def test_below_min_grace_defaults_to_five_minutes(make_job: MakeJob, pod: MakePod) -> None:
    job = make_job(replicas=3, elastic=(2, 3)).obj()
    since = T0 + timedelta(minutes=1)
    assert decide(job, below_min(since), short(pod), since + timedelta(seconds=299)).phase is JobPhase.RESCALING
    assert decide(job, below_min(since), short(pod), since + timedelta(seconds=300)).phase is JobPhase.PENDING


def test_waiting_below_min_stays_pending_and_names_the_unschedulable_pod(make_job: MakeJob, pod: MakePod) -> None:
    job = make_job(replicas=3, elastic=(2, 3, 60)).obj()
    prior = below_min(T0, JobPhase.PENDING)
    observed = seen(
        (pod("head"), pod("worker", 0), pod("worker", 1, attempt=1, phase="Pending", unschedulable="0/4 nodes fit")),
        True,
    )
    decision = decide(job, prior, observed, NOW)
    assert decision.actions == (CreatePod(W, 2, 0),)
    assert (decision.phase, decision.reason, decision.message) == (
        JobPhase.PENDING,
        Reason.BELOW_MIN_REPLICAS,
        "1 workers ready, fewer than the 2 needed; waiting for capacity (pod demo-worker-1-r1: 0/4 nodes fit)",
    )


def test_back_above_min_runs_again(make_job: MakeJob, pod: MakePod) -> None:
    job = make_job(replicas=3, elastic=(2, 3, 60)).obj()
    observed = seen((pod("head"), pod("worker", 0), pod("worker", 1, attempt=1), pod("worker", 2)), True)
    decision = decide(job, below_min(T0, JobPhase.PENDING), observed, NOW)
    assert (decision.phase, decision.reason, decision.message) == (
        JobPhase.RUNNING,
        Reason.WORKERS_READY,
        "3/3 workers ready",
    )


# -- capacity ----------------------------------------------------------------------------------------------


def test_unschedulable_replacement_leaves_the_job_running_at_the_smaller_size(make_job: MakeJob, pod: MakePod) -> None:
    job = make_job(replicas=3, elastic=(2, 3)).obj()
    observed = seen(
        (
            pod("head"),
            pod("worker", 0),
            pod("worker", 1, terminating=True, node_lost=NOT_READY),
            pod("worker", 1, attempt=1, phase="Pending", unschedulable="0/4 nodes are available"),
            pod("worker", 2),
        ),
        True,
    )
    decision = decide(job, status(), observed, NOW)
    assert decision.actions == ()
    assert (decision.phase, decision.reason, decision.message) == (
        JobPhase.RUNNING,
        Reason.WORKERS_READY,
        "2/3 workers ready; 1 waiting for capacity (see condition ScaleUpBlocked)",
    )


def test_placed_replacement_starting_is_rescaling(make_job: MakeJob, pod: MakePod) -> None:
    job = make_job(replicas=3, elastic=(2, 3)).obj()
    observed = seen(
        (pod("head"), pod("worker", 0), pod("worker", 1, attempt=1, phase="Pending"), pod("worker", 2)), True
    )
    decision = decide(job, status(workers=WorkersStatus(desired=3, ready=2)), observed, NOW)
    assert (decision.phase, decision.reason, decision.message) == (
        JobPhase.RESCALING,
        Reason.SCALED_UP,
        "2 workers ready, moving to 3",
    )
    assert decision.actions == ()


def test_resumed_job_says_so(make_job: MakeJob) -> None:
    decision = decide(make_job(replicas=1).obj(), status(JobPhase.SUSPENDED, start_time=None), Observed(), NOW)
    assert decision.notes == (Note("Normal", Reason.RESUMED, "runPolicy.suspend is false: pods recreated"),)
    assert decide(make_job(replicas=1).obj(), status(JobPhase.PENDING), Observed(), NOW).notes == ()


@pytest.mark.parametrize(
    ("service", "policy", "want"),
    [
        (True, False, (CreateNetworkPolicy(),)),
        (False, True, (CreateRayAuthSecret(), CreateDisruptionBudget(), CreateService())),
        (False, False, (CreateNetworkPolicy(), CreateRayAuthSecret(), CreateDisruptionBudget(), CreateService())),
        (True, True, ()),
    ],
)
def test_missing_service_or_network_policy_is_created_alone(
    make_job: MakeJob, pod: MakePod, service: bool, policy: bool, want: tuple[object, ...]
) -> None:
    observed = Observed(tuple(cluster(pod, 2)), service_exists=service, network_policy_exists=policy)
    decision = decide(make_job(replicas=2).obj(), status(), observed, NOW)
    assert decision.actions == want
    assert (decision.phase, decision.reason) == (JobPhase.RUNNING, Reason.WORKERS_READY)


def test_finished_job_keeps_the_reason_of_its_condition(make_job: MakeJob) -> None:
    from elastrain_operator.api import Condition

    prior = status(
        JobPhase.FAILED,
        completion_time=T0,
        conditions=[
            Condition(type="Running", status="False", reason="DeadlineExceeded", message="m0"),
            Condition(type="Failed", status="True", reason="DeadlineExceeded", message="ran too long"),
        ],
    )
    decision = decide(make_job().obj(), prior, Observed(), NOW)
    assert (decision.phase, decision.reason, decision.message) == (
        JobPhase.FAILED,
        Reason.DEADLINE_EXCEEDED,
        "ran too long",
    )


@pytest.mark.parametrize(
    ("setters", "want"),
    [({"replicas": 3}, 3), ({"replicas": 3, "elastic": (2, 4)}, 2), ({"replicas": 1, "elastic": (1, 1)}, 1)],
)
def test_needed_workers(make_job: MakeJob, setters: dict[str, Any], want: int) -> None:
    assert needed_workers(make_job(**setters).obj()) == want


# -- failures.judge ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeCase:
    id: str
    policy: dict[str, Any]
    exit_code: int | None
    reason: str | None
    blame: Blame
    verdict: Verdict
    detail: str = ""
    role: str = "worker"
    extra: dict[str, Any] = field(default_factory=dict)


JUDGE_CASES = [
    JudgeCase(
        "exit-1-default-policy",
        {},
        1,
        "Error",
        Blame.APPLICATION,
        Verdict.FAIL_JOB,
        "pod demo-worker-0 failed with exit code 1 (Error); application error, not retried "
        "(exit code 1 is not in runPolicy.retryableExitCodes)",
    ),
    JudgeCase(
        "exit-1-retryable",
        {"retryableExitCodes": [1]},
        1,
        None,
        Blame.APPLICATION,
        Verdict.RETRY,
        "pod demo-worker-0 failed with exit code 1; application error, counted against backoffLimit",
    ),
    JudgeCase("exit-2-not-in-retryable", {"retryableExitCodes": [1]}, 2, None, Blame.APPLICATION, Verdict.FAIL_JOB),
    JudgeCase(
        "exit-127-is-still-the-application", {"restartPolicy": "OnFailure"}, 127, None, Blame.APPLICATION, Verdict.RETRY
    ),
    JudgeCase("exit-1-on-failure", {"restartPolicy": "OnFailure"}, 1, None, Blame.APPLICATION, Verdict.RETRY),
    JudgeCase(
        "exit-1-never",
        {"restartPolicy": "Never"},
        1,
        None,
        Blame.APPLICATION,
        Verdict.FAIL_JOB,
        "pod demo-worker-0 failed with exit code 1; application error, not retried (restartPolicy Never)",
    ),
    JudgeCase("exit-128-signal", {"restartPolicy": "Never"}, 128, None, Blame.INFRASTRUCTURE, Verdict.RETRY),
    JudgeCase(
        "exit-137-sigkill",
        {"restartPolicy": "Never"},
        137,
        None,
        Blame.INFRASTRUCTURE,
        Verdict.RETRY,
        "pod demo-worker-0 failed with exit code 137; infrastructure, not counted against backoffLimit",
    ),
    JudgeCase("exit-143-sigterm", {}, 143, None, Blame.INFRASTRUCTURE, Verdict.RETRY),
    JudgeCase("oom-killed", {}, 137, "OOMKilled", Blame.INFRASTRUCTURE, Verdict.RETRY),
    JudgeCase(
        "evicted-without-exit-code",
        {},
        None,
        "Evicted",
        Blame.INFRASTRUCTURE,
        Verdict.RETRY,
        "pod demo-worker-0 failed (Evicted); infrastructure, not counted against backoffLimit",
    ),
    JudgeCase(
        "evicted-with-exit-code-1", {"restartPolicy": "Never"}, 1, "Evicted", Blame.INFRASTRUCTURE, Verdict.RETRY
    ),
    JudgeCase("node-shutdown", {}, 1, "NodeShutdown", Blame.INFRASTRUCTURE, Verdict.RETRY),
    JudgeCase("no-exit-code-no-reason", {}, None, None, Blame.INFRASTRUCTURE, Verdict.RETRY),
    JudgeCase("head-exit-1", {}, 1, None, Blame.APPLICATION, Verdict.FAIL_JOB, role="head"),
]


@pytest.mark.parametrize("case", JUDGE_CASES, ids=[c.id for c in JUDGE_CASES])
def test_judge(pod: MakePod, case: JudgeCase) -> None:
    failed = pod(case.role, 0, phase="Failed", exit_code=case.exit_code, reason=case.reason)
    failure = judge(failed, RunPolicy.model_validate(case.policy))
    assert (failure.blame, failure.verdict) == (case.blame, case.verdict)
    assert failure.pod is failed
    if case.detail:
        assert failure.detail == case.detail


def test_judge_quotes_the_containers_last_words(pod: MakePod) -> None:
    failed = pod("head", phase="Failed", exit_code=1, reason="Error", message="trainer: KeyError: 'x'")
    assert judge(failed, RunPolicy()).detail == (
        "pod demo-head failed with exit code 1 (Error): trainer: KeyError: 'x'; application error, not retried "
        "(exit code 1 is not in runPolicy.retryableExitCodes)"
    )


@pytest.mark.parametrize(
    ("message", "words"),
    [
        (None, None),
        ("", None),
        ("  \n \n", None),
        ("trainer: ValueError: bad", "trainer: ValueError: bad"),
        # FallbackToLogsOnError: the log's tail, whose last line of a traceback names the exception.
        ('Traceback (most recent call last):\n  File "x.py", line 1\nOSError: disk full\n\n', "OSError: disk full"),
        ("x" * (MAX_WORDS + 50), "x" * (MAX_WORDS - 1) + "…"),
    ],
    ids=["none", "empty", "blank", "one-line", "log-tail", "long"],
)
def test_last_words(message: str | None, words: str | None) -> None:
    assert last_words(message) == words


def test_a_failed_heads_last_words_are_in_the_failed_decision_and_its_event(make_job: MakeJob, pod: MakePod) -> None:
    words = "trainer: FileNotFoundError: [Errno 2] No such file or directory: '/data/tokens.bin'"
    observed = seen((pod("head", phase="Failed", exit_code=1, message=words), pod("worker", 0)))
    decision = decide(make_job(replicas=1).obj(), status(), observed, NOW)
    assert decision.phase is JobPhase.FAILED
    assert words in decision.message
    assert any(note.type == "Warning" and words in note.message for note in decision.notes), decision.notes


def test_failed_pods_skips_terminating_and_other_phases(pod: MakePod) -> None:
    pods = (
        pod("worker", 0, phase="Failed", exit_code=1),
        pod("worker", 1, phase="Failed", exit_code=1, terminating=True),
        pod("worker", 2, phase="Succeeded"),
        pod("worker", 3),
        pod("head", phase="Failed"),
    )
    assert [p.name for p in failed_pods(pods)] == ["demo-worker-0", "demo-head"]


# -- observed -----------------------------------------------------------------------------------------


def test_observed_orders_workers_and_counts_only_live_ready_ones(pod: MakePod) -> None:
    observed = Observed(
        pods=(
            pod("worker", 3),
            pod("head"),
            pod("worker", 1, ready=False),
            pod("worker", 0),
            pod("worker", 2, terminating=True),
            pod("worker", 4, phase="Succeeded", ready=True),
        ),
        service_exists=True,
    )
    assert observed.head is not None and observed.head.name == "demo-head"
    assert [p.index for p in observed.workers] == [0, 1, 2, 3, 4]
    assert observed.ready_workers == 2
    assert Observed().head is None


@pytest.mark.parametrize(
    ("phase", "terminating", "active"),
    [
        ("Pending", False, True),
        ("Running", False, True),
        ("Unknown", False, True),
        ("Running", True, False),
        ("Succeeded", False, False),
        ("Failed", False, False),
    ],
)
def test_observed_pod_active(pod: MakePod, phase: str, terminating: bool, active: bool) -> None:
    assert pod("worker", 0, phase=phase, terminating=terminating).active is active


def test_next_attempt_is_one_past_every_pod_of_the_role_and_index(pod: MakePod) -> None:
    observed = Observed(
        (
            pod("head", attempt=2, phase="Failed"),
            pod("worker", 0),
            pod("worker", 1, attempt=4, terminating=True),
            pod("worker", 1, attempt=1, phase="Succeeded"),
            pod("worker", 3, attempt=7, job="other"),
        )
    )
    assert observed.next_attempt(Role.HEAD, 0) == 3
    assert observed.next_attempt(Role.WORKER, 0) == 1
    assert observed.next_attempt(Role.WORKER, 1) == 5
    assert observed.next_attempt(Role.WORKER, 2) == 0
    assert observed.next_attempt(Role.WORKER, 3) == 8  # the kube layer lists one job's pods only


def test_head_is_the_live_one_else_the_newest(pod: MakePod) -> None:
    old = pod("head", terminating=True)
    new = pod("head", attempt=1, phase="Pending")
    assert Observed((new, old)).head is new
    assert Observed((old, new)).head is new
    failed = pod("head", attempt=2, phase="Failed")
    assert Observed((old, failed)).head is failed
    lost = pod("head", attempt=1, node_lost=NOT_READY)
    assert Observed((old, lost)).head_live() is None
    assert Observed((old, new)).head_live() is new
    assert Observed((old, new)).head_live({"demo-head-r1"}) is None


@pytest.mark.parametrize(
    ("fields", "lost"),
    [
        ({}, False),
        ({"node_lost": NOT_READY}, True),
        ({"node_lost": NOT_READY, "phase": "Pending"}, True),
        ({"node_lost": NOT_READY, "terminating": True}, False),
        ({"node_lost": NOT_READY, "phase": "Failed"}, False),
    ],
)
def test_observed_pod_lost(pod: MakePod, fields: dict[str, Any], lost: bool) -> None:
    assert pod("worker", 0, **fields).lost is lost


def test_ready_workers_leave_out_the_lost(pod: MakePod) -> None:
    observed = Observed((pod("head"), pod("worker", 0), pod("worker", 1, node_lost=NOT_READY), pod("worker", 2)))
    assert observed.ready_workers == 2
