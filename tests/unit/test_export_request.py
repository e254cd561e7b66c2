"""Exports asked for on a running job: the operator's ask, the poll that carries it, the driver's choice
of when to serve it, the head's report and what the operator makes of the answer (status, Event)."""

from __future__ import annotations

import pytest

from elastrain_operator.api import Reason
from elastrain_operator.api.constants import EXPORT_REQUEST_ANNOTATION
from elastrain_operator.api.status import ExportRequestState, ExportRequestStatus
from elastrain_operator.kube.progress import progress_url, read_progress
from elastrain_operator.kube.trim import trim_job
from elastrain_operator.reconcile.export_request import (
    ExportAsk,
    decide_export_ask,
    export_request_notes,
    export_request_status,
    requested_id,
)
from elastrain_trainer.config.progress import ExportRequestReport, ProgressReport, TrainerState
from elastrain_trainer.driver.export_request import (
    ExportRequests,
    decide_request_export,
    request_export_name,
    served_requests,
)
from elastrain_trainer.pod.head import export_request_report, newest_export
from elastrain_trainer.pod.progress import ProgressBoard, ProgressServer, export_request_of


def exported(request_id: str, step: int = 5, path: str = "/out/step-5") -> ExportRequestStatus:
    return ExportRequestStatus(request_id=request_id, state=ExportRequestState.EXPORTED, path=path, step=step)


# -- operator: what to ask --------------------------------------------------------------------------


def test_the_annotation_names_the_request() -> None:
    assert EXPORT_REQUEST_ANNOTATION == "elastrain.dev/export-request"
    assert requested_id({EXPORT_REQUEST_ANNOTATION: " r1 "}) == "r1"
    assert requested_id({EXPORT_REQUEST_ANNOTATION: ""}) is None
    assert requested_id({"other": "x"}) is None
    assert requested_id(None) is None


def test_the_operators_cache_keeps_the_export_request_annotation_and_no_other() -> None:
    annotations = {EXPORT_REQUEST_ANNOTATION: "r1", "kubectl.kubernetes.io/last-applied-configuration": "{...}"}
    job = {"metadata": {"name": "j", "annotations": annotations}, "spec": {}}
    trimmed = trim_job(job)
    assert trimmed["metadata"]["annotations"] == {EXPORT_REQUEST_ANNOTATION: "r1"}
    assert requested_id(trimmed["metadata"].get("annotations")) == "r1"
    assert "annotations" not in trim_job({"metadata": {"name": "j", "annotations": {"other": "x"}}})["metadata"]


def test_a_pending_request_is_asked_until_answered_and_never_again() -> None:
    assert decide_export_ask(None, has_export=True, prior=None) == ExportAsk()
    assert decide_export_ask("r1", has_export=True, prior=None) == ExportAsk(ask="r1")
    assert decide_export_ask("r2", has_export=True, prior=exported("r1")) == ExportAsk(ask="r2")
    # The same id again (already exported, failed or refused) asks nothing.
    assert decide_export_ask("r1", has_export=True, prior=exported("r1")) == ExportAsk()
    refused = ExportRequestStatus(request_id="r1", state=ExportRequestState.REFUSED, message="no")
    assert decide_export_ask("r1", has_export=False, prior=refused) == ExportAsk()


def test_a_job_without_spec_export_refuses_the_request_naming_the_field_and_fix() -> None:
    ask = decide_export_ask("r1", has_export=False, prior=None)
    assert ask.ask is None and ask.refused is not None
    assert ask.refused.state is ExportRequestState.REFUSED and ask.refused.request_id == "r1"
    assert ask.refused.message is not None
    assert "spec.export" in ask.refused.message and "'r1'" in ask.refused.message
    assert "set spec.export (uri or pvc)" in ask.refused.message
    assert export_request_status(None, ask, None) == ask.refused
    notes = export_request_notes(None, ask.refused)
    assert notes == (("Warning", Reason.EXPORT_REQUEST_REFUSED, ask.refused.message),)


def test_an_id_the_head_cannot_take_is_refused() -> None:
    for bad in ("two words", "x" * 129):
        ask = decide_export_ask(bad, has_export=True, prior=None)
        assert ask.refused is not None and ask.ask is None
        assert "not a valid request id" in (ask.refused.message or "")


# -- operator: the head's answer -> status and Event ------------------------------------------------


def report_with(answer: ExportRequestReport | None) -> ProgressReport:
    return ProgressReport(state=TrainerState.TRAINING, step=6, total_steps=10, export_request=answer)


def test_the_heads_answer_to_the_asked_id_becomes_status_and_one_event() -> None:
    answer = ExportRequestReport(request_id="r1", step=5, path="/out/step-5")
    status = export_request_status(None, ExportAsk(ask="r1"), report_with(answer))
    assert status == exported("r1")
    (note,) = export_request_notes(None, status)
    assert note[:2] == ("Normal", Reason.EXPORTED_ON_REQUEST)
    assert "'r1'" in note[2] and "step 5" in note[2] and "/out/step-5" in note[2]
    assert export_request_notes(status, status) == ()  # told once


def test_an_answer_to_another_id_or_no_answer_keeps_the_prior_status() -> None:
    prior = exported("r0", step=2, path="/out/step-2")
    stale = ExportRequestReport(request_id="r0", step=2, path="/out/step-2")
    assert export_request_status(prior, ExportAsk(ask="r1"), report_with(stale)) == prior
    assert export_request_status(prior, ExportAsk(ask="r1"), report_with(None)) == prior
    assert export_request_status(prior, ExportAsk(ask="r1"), None) == prior
    assert export_request_status(None, ExportAsk(), report_with(stale)) is None


def test_a_failed_export_is_a_warning_and_training_goes_on() -> None:
    answer = ExportRequestReport(request_id="r1", step=5, error="no space left on device at /out")
    status = export_request_status(None, ExportAsk(ask="r1"), report_with(answer))
    assert status is not None and status.state is ExportRequestState.FAILED
    assert status.path is None and status.message == "no space left on device at /out"
    (note,) = export_request_notes(None, status)
    assert note[:2] == ("Warning", Reason.EXPORT_REQUEST_FAILED)
    assert "no space left" in note[2]


# -- the poll carries the id to the head's mailbox --------------------------------------------------


def test_the_poll_names_the_request_and_the_head_notes_it() -> None:
    assert progress_url("10.0.0.1", 8265) == "http://10.0.0.1:8265/progress"
    assert (
        progress_url("10.0.0.1", 8265, export_request="a b/c") == "http://10.0.0.1:8265/progress?exportRequest=a+b%2Fc"
    )
    assert export_request_of("/progress?exportRequest=a+b%2Fc") == "a b/c"
    assert export_request_of("/progress") is None
    board = ProgressBoard(total_steps=10)
    requests = ExportRequests()
    server = ProgressServer(board, "127.0.0.1", 0, on_export_request=requests.ask)
    try:
        assert read_progress("127.0.0.1", server.port, timeout=5) is not None
        assert requests.pending() is None
        report = read_progress("127.0.0.1", server.port, timeout=5, export_request="r1")
        assert report is not None and report.total_steps == 10
        assert requests.pending() == "r1"
        read_progress("127.0.0.1", server.port, timeout=5, export_request="bad id")
        assert requests.pending() == "r1"  # an id the head cannot take is ignored
    finally:
        server.shutdown()


# -- driver: when to export -------------------------------------------------------------------------


#: (pending, served, export_dir, committed, step) -> the request to export now
Case = tuple[str | None, set[str], str | None, bool, int]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (("r1", set(), "/out", True, 5), "r1"),  # at the step boundary after a committed step
        ((None, set(), "/out", True, 5), None),  # nothing asked
        (("r1", {"r1"}, "/out", True, 6), None),  # served once: the same id is not repeated
        (("r1", set(), None, True, 5), None),  # nowhere to write
        (("r1", set(), "/out", False, 5), None),  # the step did not commit: wait for one that does
        (("r1", set(), "/out", True, 10), None),  # the last step: the final export is written anyway
    ],
)
def test_decide_request_export(case: Case, expected: str | None) -> None:
    pending, served, export_dir, committed, step = case
    got = decide_request_export(pending, served, export_dir=export_dir, committed=committed, step=step, total_steps=10)
    assert got == expected


def test_requested_exports_are_named_by_step_and_reported_apart_from_the_final_one() -> None:
    assert request_export_name(7) == "step-7"
    events = [
        {"kind": "request_exported", "step": 3, "request": "r1", "path": "/out/step-3"},
        {"kind": "request_export_failed", "step": 5, "request": "r2", "error": "disk full"},
    ]
    assert served_requests(events) == {"r1", "r2"}
    assert newest_export(events) is None  # status.export stays the final export's
    assert export_request_report(events) == ExportRequestReport(request_id="r2", step=5, error="disk full")
    assert export_request_report(events[:1]) == ExportRequestReport(request_id="r1", step=3, path="/out/step-3")
    assert export_request_report([]) is None
