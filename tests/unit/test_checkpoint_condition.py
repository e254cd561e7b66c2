"""The operator's CheckpointsFailing condition and its Events from the driver's progress reports, and the spec
field that decides when failing saves fail the job (spec.checkpoint.maxConsecutiveFailures)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from elastrain_operator.api import ConditionType, JobPhase, Reason, TrainingJobStatus
from elastrain_operator.api.crd import build_openapi_schema
from elastrain_operator.api.parse import InvalidTrainingJobError, parse_trainingjob
from elastrain_operator.builders.env import checkpoint_target
from elastrain_operator.reconcile.decide import Decision, Note
from elastrain_operator.reconcile.observed import Observed, ObservedPod
from elastrain_operator.reconcile.status import compute_status, transition_notes
from elastrain_trainer.config.progress import CheckpointFailureReport, ProgressReport
from elastrain_trainer.manifest import load_manifest

pytestmark = pytest.mark.unit

MakeJob = Callable[..., Any]
MakePod = Callable[..., ObservedPod]

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RUNNING = Decision(JobPhase.RUNNING, Reason.WORKERS_READY, "2 of 2 workers ready")
FULL = "no space left on device at file:///ckpt"


def report(step: int, *, good: int | None, failure: tuple[int, str, str, int] | None = None) -> ProgressReport:
    failed = (
        CheckpointFailureReport(step=failure[0], cause=failure[1], detail=failure[2], consecutive_failures=failure[3])
        if failure is not None
        else None
    )
    return ProgressReport(state="Training", step=step, last_checkpoint_step=good, checkpoint_failure=failed)


def rounds(job: Any, observed: Observed, reports: list[ProgressReport | None]) -> list[TrainingJobStatus]:
    statuses: list[TrainingJobStatus] = []
    prior: TrainingJobStatus | None = None
    for index, item in enumerate(reports):
        prior = compute_status(job, prior, RUNNING, observed, T0 + timedelta(minutes=index), report=item)
        statuses.append(prior)
    return statuses


def failing(status: TrainingJobStatus) -> Any:
    return next((c for c in status.conditions or [] if c.type == ConditionType.CHECKPOINTS_FAILING), None)


def checkpoint_notes(prior: TrainingJobStatus | None, new: TrainingJobStatus) -> list[Note]:
    reasons = {Reason.CHECKPOINT_SAVE_FAILED, Reason.CHECKPOINT_SAVED}
    return [n for n in transition_notes(prior, RUNNING, new) if n.reason in reasons]


@pytest.fixture
def observed(pod: MakePod) -> Observed:
    return Observed((pod("head"), pod("worker", 0), pod("worker", 1)), True)


def test_no_condition_while_saves_succeed(make_job: MakeJob, observed: Observed) -> None:
    [first, second] = rounds(make_job().obj(), observed, [report(5, good=5), report(10, good=10)])
    assert failing(first) is None and failing(second) is None
    assert checkpoint_notes(first, second) == []


def test_failing_saves_set_the_condition_with_cause_and_last_good_step_and_clear_after_a_save(
    make_job: MakeJob, observed: Observed
) -> None:
    job = make_job().obj()
    statuses = rounds(
        job,
        observed,
        [
            report(12, good=10),
            report(16, good=10, failure=(15, FULL, "0 bytes free", 1)),
            None,  # the head did not answer: nothing changes
            report(21, good=10, failure=(20, FULL, "12 kB free", 2)),
            report(26, good=25),
        ],
    )
    assert failing(statuses[0]) is None
    condition = failing(statuses[1])
    assert (condition.status, condition.reason) == ("True", Reason.CHECKPOINT_SAVE_FAILED)
    assert condition.message == (
        f"{FULL} (0 bytes free); 1 save in a row failed, the last at step 15; "
        "the last complete checkpoint is step 10; training goes on"
    )
    assert failing(statuses[2]) == condition
    later = failing(statuses[3])
    assert later.message.startswith(f"{FULL} (12 kB free); 2 saves in a row failed, the last at step 20")
    assert later.last_transition_time == condition.last_transition_time  # still True: no transition
    # The CHECKPOINT column (status.progress.lastCheckpointStep) keeps the last good step meanwhile.
    assert [s.progress.last_checkpoint_step for s in statuses if s.progress] == [10, 10, 10, 10, 25]
    assert statuses[3].phase is JobPhase.RUNNING
    cleared = failing(statuses[4])
    assert (cleared.status, cleared.reason) == ("False", Reason.CHECKPOINT_SAVED)
    assert cleared.message == "the checkpoint of step 25 was saved"
    # One Warning Event for the cause (not per retry), one Normal Event when saves work again.
    assert [(n.type, n.reason) for n in checkpoint_notes(statuses[0], statuses[1])] == [
        ("Warning", Reason.CHECKPOINT_SAVE_FAILED)
    ]
    assert FULL in checkpoint_notes(statuses[0], statuses[1])[0].message
    assert checkpoint_notes(statuses[1], statuses[2]) == []
    assert checkpoint_notes(statuses[2], statuses[3]) == []
    assert [(n.type, n.reason) for n in checkpoint_notes(statuses[3], statuses[4])] == [
        ("Normal", Reason.CHECKPOINT_SAVED)
    ]
    assert checkpoint_notes(statuses[4], statuses[4]) == []


def test_a_new_cause_is_a_new_event(make_job: MakeJob, observed: Observed) -> None:
    read_only = "read-only file system at file:///ckpt"
    statuses = rounds(
        make_job().obj(),
        observed,
        [
            report(16, good=10, failure=(15, FULL, "0 bytes free", 1)),
            report(21, good=10, failure=(20, read_only, "", 2)),
        ],
    )
    [note] = checkpoint_notes(statuses[0], statuses[1])
    assert (note.type, note.reason) == ("Warning", Reason.CHECKPOINT_SAVE_FAILED)
    assert read_only in note.message and failing(statuses[1]).message.startswith(f"{read_only};")


def test_without_any_complete_checkpoint_the_message_says_none(make_job: MakeJob, observed: Observed) -> None:
    [status] = rounds(make_job().obj(), observed, [report(6, good=None, failure=(5, FULL, "", 1))])
    assert "the last complete checkpoint is none" in failing(status).message


# -- spec.checkpoint.maxConsecutiveFailures -----------------------------------------------------------


def test_max_consecutive_failures_defaults_to_never_and_reaches_the_trainer(make_job: MakeJob) -> None:
    wrapper = make_job().checkpoint_uri("file:///shared/demo")
    target = checkpoint_target(wrapper.obj())
    assert target is not None and target.max_consecutive_failures == 0
    manifest = wrapper.manifest()
    manifest["spec"]["checkpoint"]["maxConsecutiveFailures"] = 3
    target = checkpoint_target(parse_trainingjob(manifest))
    assert target is not None and target.max_consecutive_failures == 3


def test_max_consecutive_failures_is_bounded_in_the_crd() -> None:
    schema = build_openapi_schema()["properties"]["spec"]["properties"]["checkpoint"]["properties"]
    assert schema["maxConsecutiveFailures"]["minimum"] == 0 and schema["maxConsecutiveFailures"]["maximum"] == 1000


@pytest.mark.parametrize("value", [-1, 1001])
def test_max_consecutive_failures_out_of_bounds_is_refused_naming_the_field(make_job: MakeJob, value: int) -> None:
    manifest = make_job().checkpoint_uri("file:///shared/demo").manifest()
    manifest["spec"]["checkpoint"]["maxConsecutiveFailures"] = value
    with pytest.raises(InvalidTrainingJobError, match="maxConsecutiveFailures"):
        parse_trainingjob(manifest)


def test_a_local_run_reads_max_consecutive_failures_from_the_manifest(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        "kind: TrainingJob\nmetadata: {name: t}\nspec:\n  trainer: {steps: 20}\n"
        "  checkpoint: {uri: 'file:///tmp/c', intervalSteps: 1, maxConsecutiveFailures: 4}\n"
    )
    assert load_manifest(path).checkpoint_max_failures == 4
