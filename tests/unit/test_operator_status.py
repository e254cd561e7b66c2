"""compute_status, transition_notes and invalid_status: the status the operator writes, without a cluster."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest

from elastrain_operator.api import (
    Condition,
    ConditionType,
    ExportStatus,
    JobPhase,
    Reason,
    ResizeRecord,
    RestartCounts,
    TrainingJobStatus,
    WorkersStatus,
)
from elastrain_operator.api.crd import build_crd
from elastrain_operator.reconcile.decide import Decision, Note, decide
from elastrain_operator.reconcile.observed import Observed, ObservedPod
from elastrain_operator.reconcile.status import (
    MAX_RESIZES,
    compute_status,
    count_workers,
    export_from,
    invalid_status,
    transition_notes,
)
from elastrain_trainer.config.progress import ProgressReport, TrainerState

pytestmark = pytest.mark.unit

#: Fixtures of conftest.py (fixtures, not imports: tests/unit is not a package).
MakeJob = Callable[..., Any]
MakePod = Callable[..., ObservedPod]

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=1)
T2 = T0 + timedelta(minutes=2)


def decision(phase: JobPhase, reason: Reason, message: str = "m", **fields: Any) -> Decision:
    return Decision(phase, reason, message, **fields)


def running(pod: MakePod, workers: int, **extra: ObservedPod) -> Observed:
    return Observed((pod("head"), *(pod("worker", i) for i in range(workers)), *extra.values()), True)


def conditions(status: TrainingJobStatus) -> dict[str, Condition]:
    return {c.type: c for c in status.conditions or []}


def dump(status: TrainingJobStatus) -> dict[str, Any]:
    dumped: dict[str, Any] = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


STATUS_SCHEMA = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]


# -- conditions -------------------------------------------------------------------------------------


def test_first_status_of_a_pending_job(make_job: MakeJob) -> None:
    job = make_job(replicas=3, elastic=(2, 4), accelerators=4).generation(7).obj()
    status = compute_status(job, None, decision(JobPhase.PENDING, Reason.CREATED, "waiting"), Observed(), T0)
    assert status.phase is JobPhase.PENDING
    assert [(c.type, c.status) for c in status.conditions or []] == [  # no pods yet: not Created
        ("Running", "False"),
        ("Rescaling", "False"),
        ("Suspended", "False"),
    ]
    assert all(c.last_transition_time == T0 and c.observed_generation == 7 for c in status.conditions or [])
    assert conditions(status)["Running"].reason == Reason.CREATED
    assert conditions(status)["Running"].message == "waiting"
    assert status.workers == WorkersStatus(desired=3, ready=0, min=2, max=4, world_size=0)
    assert status.observed_generation == 7
    assert status.selector == "elastrain.dev/job=demo,elastrain.dev/role=worker"
    assert status.progress is not None and status.progress.total_steps == 100
    assert status.resizes is None


def test_created_appears_once_pods_exist_and_stays(make_job: MakeJob, pod: MakePod) -> None:
    job = make_job(replicas=2).obj()
    pending = decision(JobPhase.PENDING, Reason.CREATED, "waiting")
    first = compute_status(job, None, pending, Observed(), T0)
    assert "Created" not in conditions(first)
    second = compute_status(job, first, pending, Observed((pod("head", phase="Pending"),), True), T1)
    created = conditions(second)["Created"]
    assert (created.status, created.reason, created.message, created.last_transition_time) == (
        "True",
        Reason.CREATED,
        "the operator created the job's pods",
        T1,
    )
    assert [c.type for c in second.conditions or []] == ["Running", "Rescaling", "Suspended", "Created"]
    suspended = compute_status(job, second, decision(JobPhase.SUSPENDED, Reason.SUSPENDED), Observed(), T2)
    assert conditions(suspended)["Created"] == created  # kept, with its time, once the pods are gone


def test_conditions_keep_transition_time_and_order_while_status_holds(make_job: MakeJob, pod: MakePod) -> None:
    job = make_job(replicas=2).obj()
    first = compute_status(job, None, decision(JobPhase.RUNNING, Reason.WORKERS_READY, "2/2"), running(pod, 2), T0)
    second = compute_status(
        job, first, decision(JobPhase.RUNNING, Reason.WORKERS_READY, "2/2 again"), running(pod, 2), T1
    )
    assert [c.type for c in second.conditions or []] == [c.type for c in first.conditions or []]
    assert conditions(second)["Running"].last_transition_time == T0
    assert conditions(second)["Running"].message == "2/2 again"
    assert conditions(second)["Created"].last_transition_time == T0
    third = compute_status(job, second, decision(JobPhase.PENDING, Reason.BELOW_MIN_REPLICAS), running(pod, 1), T2)
    assert [c.type for c in third.conditions or []] == [c.type for c in first.conditions or []]
    assert (conditions(third)["Running"].status, conditions(third)["Running"].last_transition_time) == ("False", T2)
    assert conditions(third)["Running"].reason == Reason.BELOW_MIN_REPLICAS
    assert conditions(third)["Rescaling"].last_transition_time == T0  # False all along
    assert conditions(third)["Created"].last_transition_time == T0


def test_observed_generation_follows_the_spec(make_job: MakeJob, pod: MakePod) -> None:
    first = compute_status(
        make_job().generation(1).obj(), None, decision(JobPhase.RUNNING, Reason.WORKERS_READY), running(pod, 2), T0
    )
    second = compute_status(
        make_job().generation(2).obj(), first, decision(JobPhase.RUNNING, Reason.WORKERS_READY), running(pod, 2), T1
    )
    assert second.observed_generation == 2
    assert {c.observed_generation for c in second.conditions or []} == {2}


@pytest.mark.parametrize(
    ("phase", "true_types"),
    [
        (JobPhase.PENDING, {"Created"}),
        (JobPhase.RUNNING, {"Created", "Running"}),
        (JobPhase.RESCALING, {"Created", "Running", "Rescaling"}),
        (JobPhase.SUSPENDED, {"Created", "Suspended"}),
        (JobPhase.SUCCEEDED, {"Created", "Succeeded"}),
        (JobPhase.FAILED, {"Created", "Failed"}),
    ],
)
def test_conditions_true_in_each_phase(make_job: MakeJob, pod: MakePod, phase: JobPhase, true_types: set[str]) -> None:
    prior = TrainingJobStatus(phase=JobPhase.RUNNING)
    status = compute_status(make_job().obj(), prior, decision(phase, Reason.CREATED), running(pod, 1), T0)
    assert {c.type for c in status.conditions or [] if c.status == "True"} == true_types
    without_pods = compute_status(make_job().obj(), prior, decision(phase, Reason.CREATED), Observed(), T0)
    assert {c.type for c in without_pods.conditions or [] if c.status == "True"} == true_types - {"Created"}


def test_terminal_conditions_are_frozen_after_the_transition(make_job: MakeJob) -> None:
    job = make_job().obj()
    failed = compute_status(
        job,
        TrainingJobStatus(phase=JobPhase.RUNNING),
        decision(JobPhase.FAILED, Reason.DEADLINE_EXCEEDED, "too long", completion_time=T0),
        Observed(),
        T0,
    )
    assert conditions(failed)["Failed"].reason == Reason.DEADLINE_EXCEEDED
    later = compute_status(
        job, failed, decision(JobPhase.FAILED, Reason.APPLICATION_ERROR, "other", completion_time=T0), Observed(), T2
    )
    assert later.conditions == failed.conditions
    assert later.completion_time == T0


def test_scale_up_blocked_appears_only_when_a_worker_cannot_be_placed(make_job: MakeJob, pod: MakePod) -> None:
    job = make_job(replicas=3, elastic=(2, 3)).obj()
    rescaling = decision(JobPhase.RESCALING, Reason.SCALED_UP)
    unplaced = pod("worker", 2, phase="Pending", unschedulable="0/4 nodes are available")
    clear = compute_status(job, None, rescaling, running(pod, 2), T0)
    assert "ScaleUpBlocked" not in conditions(clear)
    blocked = compute_status(job, clear, rescaling, running(pod, 2, w2=unplaced), T1)
    cond = conditions(blocked)[ConditionType.SCALE_UP_BLOCKED]
    assert (cond.status, cond.reason, cond.last_transition_time) == ("True", Reason.UNSCHEDULABLE, T1)
    assert cond.message == "pod demo-worker-2 cannot be scheduled: 0/4 nodes are available"
    placed = compute_status(job, blocked, rescaling, running(pod, 3), T2)
    cond = conditions(placed)[ConditionType.SCALE_UP_BLOCKED]
    assert (cond.status, cond.reason, cond.last_transition_time, cond.message) == (
        "False",
        Reason.WORKERS_READY,
        T2,
        "every worker pod is placed",
    )
    assert [c.type for c in placed.conditions or []][-1] == "ScaleUpBlocked"


def test_unschedulable_head_does_not_block_scale_up(make_job: MakeJob, pod: MakePod) -> None:
    observed = Observed((pod("head", phase="Pending", unschedulable="no node"),), True)
    status = compute_status(make_job().obj(), None, decision(JobPhase.PENDING, Reason.UNSCHEDULABLE), observed, T0)
    assert "ScaleUpBlocked" not in conditions(status)


# -- counts, times, resizes ---------------------------------------------------------------------------


def test_workers_restarts_and_times_come_from_observed_and_decision(make_job: MakeJob, pod: MakePod) -> None:
    job = make_job(replicas=3, accelerators=4).obj()
    observed = running(pod, 2, w2=pod("worker", 2, phase="Pending"))
    chosen = decision(
        JobPhase.PENDING,
        Reason.BELOW_MIN_REPLICAS,
        restarts=RestartCounts(application=2, infrastructure=5),
        start_time=T0,
    )
    status = compute_status(job, None, chosen, observed, T1)
    assert status.workers == WorkersStatus(desired=3, ready=2, min=3, max=3, world_size=8)
    assert status.restarts == RestartCounts(application=2, infrastructure=5)
    assert (status.start_time, status.completion_time) == (T0, None)


def test_progress_is_kept_and_total_steps_follows_the_spec(make_job: MakeJob) -> None:
    prior = TrainingJobStatus.model_validate({"progress": {"step": 40, "totalSteps": 10, "loss": 2.5}})
    status = compute_status(
        make_job(steps=500).obj(), prior, decision(JobPhase.RUNNING, Reason.WORKERS_READY), Observed(), T0
    )
    assert status.progress is not None
    assert (status.progress.step, status.progress.total_steps, status.progress.loss) == (40, 500, 2.5)


def record(time: datetime, before: int, after: int, reason: str) -> ResizeRecord:
    return ResizeRecord.model_validate({"time": time, "from": before, "to": after, "reason": reason})


@pytest.mark.parametrize(
    ("before", "after", "resize_reason", "recorded"),
    [
        (2, 4, Reason.SCALED_UP, Reason.SCALED_UP),
        (2, 3, None, Reason.SCALED_UP),
        (2, 3, Reason.WORKER_LOST, Reason.SCALED_UP),  # growing is growing, whatever else happened
        (4, 1, Reason.SCALED_DOWN, Reason.SCALED_DOWN),
        (3, 2, Reason.WORKER_LOST, Reason.WORKER_LOST),
        (3, 2, Reason.SCALED_UP, Reason.WORKER_LOST),  # fewer without a request to shrink: one was lost
        (3, 2, None, Reason.WORKER_LOST),
    ],
)
@pytest.mark.parametrize("prior_phase", [JobPhase.RUNNING, JobPhase.RESCALING])
def test_resize_recorded_when_the_ready_count_of_a_training_job_changes(
    *,
    make_job: MakeJob,
    pod: MakePod,
    prior_phase: JobPhase,
    before: int,
    after: int,
    resize_reason: Reason | None,
    recorded: Reason,
) -> None:
    prior = TrainingJobStatus(phase=prior_phase, workers=WorkersStatus(desired=4, ready=before))
    job = make_job(replicas=4, elastic=(1, 4)).obj()
    chosen = decision(JobPhase.RESCALING, Reason.SCALED_UP, resize_reason=resize_reason)
    status = compute_status(job, prior, chosen, running(pod, after), T1)
    assert status.resizes == [record(T1, before, after, recorded)]
    again = compute_status(job, status, chosen, running(pod, after), T2)
    assert again.resizes == status.resizes


@pytest.mark.parametrize(
    ("prior_phase", "phase", "before", "after"),
    [
        (JobPhase.PENDING, JobPhase.RUNNING, 0, 2),  # starting is not resizing
        (JobPhase.PENDING, JobPhase.PENDING, 1, 2),
        (None, JobPhase.PENDING, 0, 1),
        (JobPhase.SUSPENDED, JobPhase.PENDING, 0, 2),
        (JobPhase.RUNNING, JobPhase.SUCCEEDED, 3, 0),  # finishing is not resizing
        (JobPhase.RUNNING, JobPhase.FAILED, 3, 0),
        (JobPhase.RUNNING, JobPhase.SUSPENDED, 3, 0),
        (JobPhase.RUNNING, JobPhase.RUNNING, 3, 3),
    ],
)
def test_no_resize_outside_training_or_without_a_change(
    *, make_job: MakeJob, pod: MakePod, prior_phase: JobPhase | None, phase: JobPhase, before: int, after: int
) -> None:
    prior = TrainingJobStatus(phase=prior_phase, workers=WorkersStatus(desired=3, ready=before))
    status = compute_status(make_job(replicas=3).obj(), prior, decision(phase, Reason.CREATED), running(pod, after), T1)
    assert status.resizes is None


def test_falling_below_min_into_pending_is_recorded(make_job: MakeJob, pod: MakePod) -> None:
    prior = TrainingJobStatus(phase=JobPhase.RUNNING, workers=WorkersStatus(desired=2, ready=2))
    chosen = decision(JobPhase.PENDING, Reason.BELOW_MIN_REPLICAS, resize_reason=Reason.WORKER_LOST)
    status = compute_status(make_job(replicas=2).obj(), prior, chosen, running(pod, 1), T1)
    assert status.resizes == [record(T1, 2, 1, Reason.WORKER_LOST)]


@pytest.mark.parametrize(
    ("running_reason", "recorded"),
    [(Reason.BELOW_MIN_REPLICAS, [record(T1, 1, 2, Reason.SCALED_UP)]), (Reason.CREATED, None), (None, None)],
)
def test_waiting_below_min_after_training_still_records_the_way_back(
    make_job: MakeJob, pod: MakePod, running_reason: Reason | None, recorded: list[ResizeRecord] | None
) -> None:
    conds = [] if running_reason is None else [Condition(type="Running", status="False", reason=running_reason)]
    prior = TrainingJobStatus(phase=JobPhase.PENDING, workers=WorkersStatus(desired=2, ready=1), conditions=conds)
    chosen = decision(JobPhase.RUNNING, Reason.WORKERS_READY)
    status = compute_status(make_job(replicas=2).obj(), prior, chosen, running(pod, 2), T1)
    assert status.resizes == recorded


def test_a_change_of_replicas_alone_is_no_resize(make_job: MakeJob, pod: MakePod) -> None:
    """resizes follow the workers that train, not the request: 2 ready, replicas 2 -> 4, nothing yet."""
    prior = TrainingJobStatus(phase=JobPhase.RUNNING, workers=WorkersStatus(desired=2, ready=2))
    job = make_job(replicas=4, elastic=(1, 4)).obj()
    status = compute_status(job, prior, decision(JobPhase.RUNNING, Reason.WORKERS_READY), running(pod, 2), T1)
    assert status.resizes is None
    assert status.workers == WorkersStatus(desired=4, ready=2, min=1, max=4, world_size=16)


def test_lost_and_terminating_workers_are_not_ready(make_job: MakeJob, pod: MakePod) -> None:
    observed = running(
        pod,
        1,
        lost=pod("worker", 1, node_lost="node gpu-node-1 deleted"),
        gone=pod("worker", 2, terminating=True),
        new=pod("worker", 2, attempt=1),
    )
    prior = TrainingJobStatus(phase=JobPhase.RUNNING, workers=WorkersStatus(desired=3, ready=3))
    chosen = decision(JobPhase.RUNNING, Reason.WORKERS_READY, resize_reason=Reason.WORKER_LOST)
    status = compute_status(make_job(replicas=3, elastic=(1, 3)).obj(), prior, chosen, observed, T1)
    assert status.workers == WorkersStatus(desired=3, ready=2, min=1, max=3, world_size=16)
    assert status.resizes == [record(T1, 3, 2, Reason.WORKER_LOST)]


def test_no_resize_on_the_first_status(make_job: MakeJob) -> None:
    status = compute_status(
        make_job(replicas=3).obj(), None, decision(JobPhase.PENDING, Reason.CREATED), Observed(), T0
    )
    assert status.resizes is None


def test_resizes_keep_the_newest_twenty(make_job: MakeJob, pod: MakePod) -> None:
    old = [record(T0 + timedelta(seconds=i), i % 3 + 1, (i + 1) % 3 + 1, "ScaledUp") for i in range(MAX_RESIZES)]
    prior = TrainingJobStatus(phase=JobPhase.RUNNING, workers=WorkersStatus(desired=3, ready=2), resizes=old)
    status = compute_status(
        make_job(replicas=3, elastic=(1, 4)).obj(),
        prior,
        decision(JobPhase.RUNNING, Reason.WORKERS_READY),
        running(pod, 3),
        T2,
    )
    assert status.resizes is not None
    assert len(status.resizes) == MAX_RESIZES == 20
    assert status.resizes[:-1] == old[1:]
    assert status.resizes[-1] == record(T2, 2, 3, Reason.SCALED_UP)


# -- serialisation ------------------------------------------------------------------------------------


def test_status_round_trips_and_validates_against_the_crd(make_job: MakeJob, pod: MakePod) -> None:
    job = make_job(replicas=3, elastic=(2, 4)).generation(4).obj()
    prior = TrainingJobStatus(
        phase=JobPhase.RUNNING,
        workers=WorkersStatus(desired=3, ready=3),
        resizes=[record(T0, 1, 3, "ScaledUp")],
    )
    observed = running(
        pod,
        2,
        w2=pod("worker", 2, terminating=True, node_lost="node gpu-node-2 NotReady (Unknown)"),
        w2r1=pod("worker", 2, attempt=1, phase="Pending", unschedulable="no gpu"),
    )
    chosen = decide(job, prior.model_copy(update={"start_time": T0}), observed, T1)
    status = compute_status(job, prior, chosen, observed, T1)
    dumped = dump(status)
    jsonschema.validate(dumped, STATUS_SCHEMA)
    assert TrainingJobStatus.model_validate(dumped) == status
    assert dump(TrainingJobStatus.model_validate(dumped)) == dumped
    assert dumped["phase"] == "Running"
    assert dumped["resizes"][-1] == {"time": "2026-01-01T12:01:00Z", "from": 3, "to": 2, "reason": "WorkerLost"}
    assert dumped["workers"] == {"desired": 3, "ready": 2, "min": 2, "max": 4, "worldSize": 16}
    assert dumped["conditions"][-1]["type"] == "ScaleUpBlocked"
    assert dumped["conditions"][0]["lastTransitionTime"] == "2026-01-01T12:01:00Z"
    assert dumped["startTime"] == "2026-01-01T12:00:00Z"
    assert "completionTime" not in dumped


def test_invalid_status_round_trips_and_validates_against_the_crd() -> None:
    status = invalid_status(None, "TrainingJob ml/demo is invalid: spec.replicas: bad", now=T0, generation=3)
    dumped = dump(status)
    jsonschema.validate(dumped, STATUS_SCHEMA)
    assert TrainingJobStatus.model_validate(dumped) == status


# -- events -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "reason", "kind", "message"),
    [
        (None, JobPhase.PENDING, Reason.CREATED, "Normal", "new -> Pending: m"),
        (JobPhase.PENDING, JobPhase.RUNNING, Reason.WORKERS_READY, "Normal", "Pending -> Running: m"),
        (JobPhase.RUNNING, JobPhase.FAILED, Reason.BACKOFF_LIMIT_EXCEEDED, "Warning", "Running -> Failed: m"),
        (JobPhase.RUNNING, JobPhase.SUSPENDED, Reason.SUSPENDED, "Normal", "Running -> Suspended: m"),
    ],
)
def test_transition_note_on_phase_change(
    before: JobPhase | None, after: JobPhase, reason: Reason, kind: str, message: str
) -> None:
    prior = None if before is None else TrainingJobStatus(phase=before)
    assert transition_notes(prior, decision(after, reason)) == (Note(kind, reason, message),)


def test_no_transition_note_without_phase_change_but_decision_notes_pass_through() -> None:
    own = Note("Warning", Reason.WORKER_LOST, "pod demo-worker-1 failed")
    prior = TrainingJobStatus(phase=JobPhase.RUNNING)
    assert transition_notes(prior, decision(JobPhase.RUNNING, Reason.WORKERS_READY)) == ()
    assert transition_notes(prior, decision(JobPhase.RUNNING, Reason.WORKERS_READY, notes=(own,))) == (own,)
    failed = transition_notes(prior, decision(JobPhase.FAILED, Reason.APPLICATION_ERROR, "boom", notes=(own,)))
    assert failed == (own, Note("Warning", Reason.APPLICATION_ERROR, "Running -> Failed: boom"))


# -- invalid spec -------------------------------------------------------------------------------------


def test_invalid_status_fails_the_job_and_keeps_what_was_there() -> None:
    prior = TrainingJobStatus(
        phase=JobPhase.RUNNING,
        start_time=T0,
        restarts=RestartCounts(application=1),
        conditions=[Condition(type="Running", status="True", reason="WorkersReady", last_transition_time=T0)],
    )
    status = invalid_status(prior, "the API server rejected Pod demo-worker-0", now=T1, generation=5)
    assert status.phase is JobPhase.FAILED
    assert [c.type for c in status.conditions or []] == ["Running", "Failed"]
    failed = conditions(status)["Failed"]
    assert (failed.status, failed.reason, failed.message) == (
        "True",
        Reason.INVALID_SPEC,
        "the API server rejected Pod demo-worker-0",
    )
    assert (failed.last_transition_time, failed.observed_generation) == (T1, 5)
    assert conditions(status)["Running"] == prior.conditions[0]  # type: ignore[index]
    assert (status.start_time, status.completion_time, status.observed_generation) == (T0, T1, 5)
    assert status.restarts == RestartCounts(application=1)


def test_invalid_status_is_stable_across_rounds() -> None:
    first = invalid_status(None, "bad", now=T0, generation=1)
    second = invalid_status(first, "bad", now=T2, generation=1)
    assert second == first
    assert dump(second) == dump(first)


def test_export_reported_by_the_head_reaches_status_and_stays() -> None:
    report = ProgressReport(step=30, export_path="/export/final", export_step=30)
    assert export_from(report) == ExportStatus(path="/export/final", step=30)
    assert export_from(ProgressReport(step=30)) is None


def test_status_export_is_kept_when_the_head_no_longer_reports(make_job: MakeJob) -> None:
    prior = TrainingJobStatus.model_validate({"export": {"path": "/export/final", "step": 12}})
    status = compute_status(make_job().obj(), prior, decision(JobPhase.RUNNING, Reason.WORKERS_READY), Observed(), T0)
    assert status.export == ExportStatus(path="/export/final", step=12)


# -- workers out of the driver's quorum -----------------------------------------------------------------


def report(out: int, reason: str | None = None) -> ProgressReport:
    return ProgressReport(state=TrainerState.TRAINING, step=5, groups=3 - out, groups_out=out, groups_out_reason=reason)


@pytest.mark.parametrize(
    ("pods_ready", "progress", "prior_unhealthy", "counted"),
    [
        pytest.param(3, None, None, (3, 0), id="no-report-ever-pods-count"),
        pytest.param(3, report(0), None, (3, 0), id="every-pod-in-the-quorum"),
        pytest.param(3, report(1, "WorkerHung"), None, (2, 1), id="a-pod-out-of-the-quorum-is-not-ready"),
        pytest.param(3, None, 1, (2, 1), id="a-round-without-report-keeps-the-last-count"),
        pytest.param(3, report(0), 1, (3, 0), id="back-in-the-quorum"),
        pytest.param(1, report(2), None, (0, 1), id="never-more-out-than-ready-pods"),
    ],
)
def test_count_workers_from_the_drivers_quorum(
    pods_ready: int, progress: ProgressReport | None, prior_unhealthy: int | None, counted: tuple[int, int]
) -> None:
    prior = TrainingJobStatus(phase=JobPhase.RUNNING, workers=WorkersStatus(ready=3, unhealthy=prior_unhealthy))
    assert count_workers(pods_ready, report=progress, prior=prior) == counted


@pytest.mark.parametrize(
    ("reason", "recorded"), [("WorkerHung", Reason.WORKER_HUNG), ("WorkerLost", Reason.WORKER_LOST)]
)
def test_a_group_dropped_by_the_driver_is_a_resize_with_its_reason(
    make_job: MakeJob, pod: MakePod, reason: str, recorded: Reason
) -> None:
    job = make_job(replicas=3, elastic=(1, 3)).obj()
    prior = TrainingJobStatus(phase=JobPhase.RUNNING, workers=WorkersStatus(desired=3, ready=3))
    chosen = decision(JobPhase.RUNNING, Reason.WORKERS_READY)
    out = compute_status(job, prior, chosen, running(pod, 3), T1, report=report(1, reason))
    assert out.workers is not None and (out.workers.ready, out.workers.unhealthy, out.workers.world_size) == (2, 1, 16)
    assert out.resizes == [record(T1, 3, 2, recorded)]
    back = compute_status(job, out, chosen, running(pod, 3), T2, report=report(0))
    assert back.workers is not None and (back.workers.ready, back.workers.unhealthy) == (3, None)
    assert back.resizes == [record(T1, 3, 2, recorded), record(T2, 2, 3, Reason.SCALED_UP)]
