"""The trainer -> operator progress contract: the head's progress server, the operator's reader, status.progress."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from elastrain_operator.api import JobPhase, Reason, Role, parse_trainingjob
from elastrain_operator.kube.progress import read_progress
from elastrain_operator.reconcile.decide import Decision
from elastrain_operator.reconcile.observed import Observed, ObservedPod
from elastrain_operator.reconcile.status import compute_status, transition_notes
from elastrain_trainer.config.progress import MAX_WARNINGS, ProgressReport, TrainerState
from elastrain_trainer.driver.story import warnings_of
from elastrain_trainer.ledger import Piece
from elastrain_trainer.pod.progress import ProgressBoard, ProgressServer
from elastrain_trainer.pod.summary import Coverage, coverage

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def served() -> Any:
    board = ProgressBoard(total_steps=100)
    server = ProgressServer(board, "127.0.0.1", 0)
    yield board, server.port
    server.shutdown()


def test_the_operator_reads_what_the_head_serves(served: Any) -> None:
    board, port = served
    board.update(state=TrainerState.TRAINING, step=42, loss=3.5, tokens_per_second=1200.0, groups=3, world_size=3)
    report = read_progress("127.0.0.1", port)
    assert report is not None and report == board.get()
    assert (report.step, report.loss, report.groups, report.state) == (42, 3.5, 3, TrainerState.TRAINING)


def test_only_the_progress_path_is_served(served: Any) -> None:
    _, port = served
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=2)
    assert err.value.code == 404


def test_the_final_report_counts_as_read_only_once_it_was_served(served: Any) -> None:
    board, port = served
    assert read_progress("127.0.0.1", port) is not None  # a Training report: not final
    assert not board.wait_read(0.05)
    board.update(state=TrainerState.FINISHED, step=100)
    assert not board.wait_read(0.05)  # final, but nobody read it yet
    assert read_progress("127.0.0.1", port) is not None
    assert board.wait_read(0.05)


def test_a_head_that_does_not_answer_gives_no_report() -> None:
    board = ProgressBoard(total_steps=1)
    server = ProgressServer(board, "127.0.0.1", 0)
    port = server.port
    server.shutdown()
    assert read_progress("127.0.0.1", port, timeout=0.5) is None


def test_an_unreadable_answer_gives_no_report() -> None:
    class Garbage(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"step": -3}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert read_progress("127.0.0.1", int(server.server_address[1])) is None
    finally:
        server.shutdown()
        server.server_close()


def test_a_newer_trainers_extra_fields_are_ignored() -> None:
    report = ProgressReport.model_validate_json('{"step": 5, "somethingNew": 1}')
    assert report.step == 5


def _job() -> Any:
    return parse_trainingjob(
        {
            "apiVersion": "elastrain.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": "j", "namespace": "n", "uid": "u", "generation": 1},
            "spec": {"image": "i", "replicas": 2, "trainer": {"steps": 100}},
        }
    )


def test_status_progress_is_copied_from_the_report_and_kept_when_the_head_is_silent() -> None:
    job = _job()
    decision = Decision(phase=JobPhase.RUNNING, reason=Reason.WORKERS_READY, message="2/2")
    report = ProgressReport(step=42, total_steps=100, loss=3.5, tokens_per_second=1200.0, last_checkpoint_step=40)
    first = compute_status(job, None, decision, Observed(), T0, report=report)
    assert first.progress is not None
    assert (first.progress.step, first.progress.loss, first.progress.last_checkpoint_step) == (42, 3.5, 40)
    assert first.progress.tokens_per_second == 1200
    assert first.progress.total_steps == 100
    second = compute_status(job, first, decision, Observed(), T0)
    assert second.progress == first.progress


def test_coverage_counts_distinct_and_duplicated_samples_per_epoch() -> None:
    committed = [
        {"g1": [Piece(0, 0, 10)], "g2": [Piece(0, 10, 20)]},
        {"g1": [Piece(0, 15, 25)], "g2": [Piece(1, 0, 5)]},
    ]
    assert coverage(committed) == [
        Coverage(epoch=0, samples=25, duplicated=5),
        Coverage(epoch=1, samples=5, duplicated=0),
    ]


def test_a_worker_that_cannot_be_placed_is_told_once_as_a_warning_event() -> None:
    job = _job()
    decision = Decision(phase=JobPhase.RUNNING, reason=Reason.WORKERS_READY, message="1/2")
    blocked = ObservedPod(
        name="j-worker-1", role=Role.WORKER, index=1, phase="Pending", unschedulable="0/3 nodes: Insufficient cpu"
    )
    first = compute_status(job, None, decision, Observed((blocked,)), T0)
    notes = transition_notes(None, decision, first)
    warnings = [n for n in notes if n.reason == Reason.UNSCHEDULABLE]
    assert len(warnings) == 1 and warnings[0].type == "Warning"
    assert "j-worker-1" in warnings[0].message and "Insufficient cpu" in warnings[0].message
    second = compute_status(job, first, decision, Observed((blocked,)), T0)
    assert not [n for n in transition_notes(first, decision, second) if n.reason == Reason.UNSCHEDULABLE]


def test_each_driver_warning_is_told_once_as_a_warning_event_and_kept_in_the_status() -> None:
    job = _job()
    decision = Decision(phase=JobPhase.RUNNING, reason=Reason.WORKERS_READY, message="2/2")
    repeats = "spec.trainer.data.path holds 1 samples, fewer than 800 (100 steps x 8): the data repeats 800 times"
    failing = "group failing: node abc lost 3 groups in a row"
    first = compute_status(job, None, decision, Observed(), T0, report=ProgressReport(warnings=[repeats]))
    assert first.progress is not None and first.progress.warnings == [repeats]
    told = [n for n in transition_notes(None, decision, first) if n.reason == Reason.TRAINER_WARNING]
    assert [(n.type, n.message) for n in told] == [("Warning", repeats)]
    # The head says it again every round: not told again; a new warning is.
    second = compute_status(job, first, decision, Observed(), T0, report=ProgressReport(warnings=[repeats, failing]))
    told = [n for n in transition_notes(first, decision, second) if n.reason == Reason.TRAINER_WARNING]
    assert [n.message for n in told] == [failing]
    silent = compute_status(job, second, decision, Observed(), T0)  # the head did not answer: kept, not told
    assert silent.progress is not None and silent.progress.warnings == [repeats, failing]
    assert not [n for n in transition_notes(second, decision, silent) if n.reason == Reason.TRAINER_WARNING]
    no_warnings = compute_status(job, None, decision, Observed(), T0, report=ProgressReport())
    assert no_warnings.progress is not None and no_warnings.progress.warnings is None


def test_the_head_reports_data_failing_node_and_hung_group_warnings_oldest_first_each_once() -> None:
    events: list[dict[str, Any]] = [
        {"kind": "data_warning", "message": "the data repeats 3 times"},
        {"kind": "group_lost", "group": "g1", "reason": "x"},
        {"kind": "group_failing", "node": "n1", "losses": 3, "reason": "train failed: IndexError: i"},
        {"kind": "data_warning", "message": "the data repeats 3 times"},
        {"kind": "group_hung", "group": "g2", "node": "n2", "step": 7, "waited_seconds": 10.1, "bound_seconds": 10.0},
    ]
    assert warnings_of(events) == [
        "data warning: the data repeats 3 times",
        "group failing: node n1 lost 3 groups in a row (last: train failed: IndexError: i); "
        "training goes on without its share",
        "group hung: g2 on node n2 at step 7: no step result after 10.1 s (watchdog bound 10.0 s); fencing it",
    ]
    many = [{"kind": "data_warning", "message": str(i)} for i in range(MAX_WARNINGS + 5)]
    assert len(warnings_of(many)) == MAX_WARNINGS
