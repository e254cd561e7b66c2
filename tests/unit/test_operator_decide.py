"""The lifecycle table: ``decide(job, prior status, observed pods, now)``, one scenario per row, time passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from elastrain_operator.api import JobPhase, Reason, RestartCounts, Role, RunPolicy, TrainingJobStatus
from elastrain_operator.reconcile.decide import (
    CreatePod,
    CreateService,
    DeleteJob,
    DeletePod,
    decide,
    needed_workers,
)
from elastrain_operator.reconcile.failures import Blame, Verdict, failed_pods, judge
from elastrain_operator.reconcile.observed import Observed, ObservedPod

pytestmark = pytest.mark.unit

#: Fixtures of conftest.py (fixtures, not imports: tests/unit is not a package).
MakeJob = Callable[..., Any]
MakePod = Callable[..., ObservedPod]
Pods = Callable[[MakePod], list[ObservedPod]]

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
H, W = Role.HEAD, Role.WORKER


def status(
    phase: JobPhase | None = JobPhase.RUNNING, *, app: int = 0, infra: int = 0, **fields: Any
) -> TrainingJobStatus:
    fields.setdefault("start_time", T0)
    return TrainingJobStatus(phase=phase, restarts=RestartCounts(application=app, infrastructure=infra), **fields)


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
        (CreateService(), CreatePod(H, 0), CreatePod(W, 0), CreatePod(W, 1), CreatePod(W, 2)),
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
        "fewer-ready-than-min-after-running-is-pending-below-min",
        {"replicas": 3, "elastic": (2, 4)},
        status(),
        lambda p: [*cluster(p, 1), p("worker", 1, phase="Pending"), p("worker", 2, phase="Pending")],
        JobPhase.PENDING,
        Reason.BELOW_MIN_REPLICAS,
        message="1 workers ready, fewer than the 2 needed; waiting for capacity",
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
        "scale-up-creates-the-next-indices",
        {"replicas": 4, "elastic": (1, 4)},
        status(),
        lambda p: cluster(p, 2),
        JobPhase.RESCALING,
        Reason.SCALED_UP,
        (CreatePod(W, 2), CreatePod(W, 3)),
    ),
    Case(
        "scale-down-deletes-the-highest-indices",
        {"replicas": 2, "elastic": (1, 4)},
        status(),
        lambda p: cluster(p, 4),
        JobPhase.RESCALING,
        Reason.SCALED_DOWN,
        (
            DeletePod("demo-worker-2", "scaled down to 2 workers"),
            DeletePod("demo-worker-3", "scaled down to 2 workers"),
        ),
        message="4 workers ready, moving to 2",
    ),
    Case(
        "scale-down-skips-pods-already-terminating",
        {"replicas": 1, "elastic": (1, 4)},
        status(),
        lambda p: [*cluster(p, 2), p("worker", 2, terminating=True)],
        JobPhase.RESCALING,
        Reason.SCALED_DOWN,
        (DeletePod("demo-worker-1", "scaled down to 1 workers"),),
    ),
    Case(
        "terminating-pods-are-not-recreated-until-gone",
        {"replicas": 2},
        status(JobPhase.PENDING),
        lambda p: [p("head", terminating=True), p("worker", 0, terminating=True)],
        JobPhase.PENDING,
        Reason.CREATED,
        (CreatePod(W, 1),),
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
        JobPhase.RESCALING,
        Reason.SCALED_UP,
        (DeletePod("demo-worker-1", "replacing a failed worker"),),
        restarts=(2, 0),
        notes=(("Warning", Reason.APPLICATION_ERROR),),
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
        (DeletePod("demo-worker-1", "replacing a failed worker"),),
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
        (DeletePod("demo-worker-1", "replacing a failed worker"),),
        restarts=(0, 4),
        notes=(("Warning", Reason.WORKER_LOST),),
    ),
    Case(
        "eviction-is-infrastructure-whatever-the-exit-code",
        {"replicas": 2, "backoff_limit": 0, "restart_policy": "Never"},
        status(),
        lambda p: [*cluster(p, 1), p("worker", 1, phase="Failed", exit_code=1, reason="Evicted")],
        JobPhase.PENDING,
        Reason.BELOW_MIN_REPLICAS,
        (DeletePod("demo-worker-1", "replacing a failed worker"),),
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
        (DeletePod("demo-worker-1", "replacing a failed worker"),),
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
        tuple(
            DeletePod(n, "driver failed: restarting the Ray cluster from the last checkpoint")
            for n in ("demo-head", "demo-worker-0", "demo-worker-1")
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
        tuple(
            DeletePod(n, "driver failed: restarting the Ray cluster from the last checkpoint")
            for n in ("demo-head", "demo-worker-0")
        ),
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
        (CreatePod(H, 0), CreatePod(W, 0), CreatePod(W, 1)),
        now=T0 + timedelta(hours=1),
        start=T0 + timedelta(hours=1),
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
    observed = Observed(pods=tuple(case.pods(pod)), service_exists=case.service)
    decision = decide(job, case.prior, observed, case.now)
    assert (decision.phase, decision.reason) == (case.phase, case.reason), decision.message
    assert decision.actions == case.actions
    assert (decision.restarts.application, decision.restarts.infrastructure) == case.restarts
    assert decision.start_time == case.start
    assert decision.completion_time == case.completion
    assert tuple((n.type, n.reason) for n in decision.notes) == case.notes
    if case.message:
        assert decision.message == case.message


def test_worker_replacement_takes_two_rounds(make_job: MakeJob, pod: MakePod) -> None:
    """Round 1 deletes the failed worker; round 2 (the pod gone) creates it anew, without counting again."""
    job = make_job(replicas=2, restart_policy="OnFailure").obj()
    first = decide(
        job,
        status(),
        Observed((pod("head"), pod("worker", 0), pod("worker", 1, phase="Failed", exit_code=1)), True),
        NOW,
    )
    assert first.actions == (DeletePod("demo-worker-1", "replacing a failed worker"),)
    second = decide(
        job,
        status(app=first.restarts.application),
        Observed((pod("head"), pod("worker", 0)), True),
        NOW + timedelta(seconds=2),
    )
    assert second.actions == (CreatePod(W, 1),)
    assert second.restarts.application == 1


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
