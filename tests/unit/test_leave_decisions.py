"""Graceful leave on scale-down: the operator's gate, the poll that carries the leaving pods, the head's
mailbox and the driver's choice of which groups leave at a step boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from elastrain_operator.api import Role
from elastrain_operator.kube.progress import progress_url, read_progress
from elastrain_operator.reconcile.leave import decide_leave_gate, leave_timed_out_message, leaving_ips
from elastrain_operator.reconcile.observed import ObservedPod
from elastrain_trainer.config.progress import ProgressReport
from elastrain_trainer.driver.leave import LeavePause, LeaveRequests, decide_leave, leaving_nodes
from elastrain_trainer.driver.story import describe_event
from elastrain_trainer.pod.progress import ProgressBoard, ProgressServer, export_request_of, leave_of

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def worker(index: int, ip: str | None) -> ObservedPod:
    return ObservedPod(name=f"j-worker-{index}", role=Role.WORKER, index=index, phase="Running", ready=True, ip=ip)


# -- operator: which deletions wait ------------------------------------------------------------------


def test_a_leaving_pod_waits_for_the_driver_and_is_asked_by_its_ip() -> None:
    leavers = [worker(1, "10.0.0.2"), worker(2, "10.0.0.3")]
    assert leaving_ips(leavers) == ("10.0.0.2", "10.0.0.3")
    gate = decide_leave_gate(leavers, head_answers=True, left=(), asked_since={}, now=NOW, timeout_seconds=30)
    assert gate.hold == {"j-worker-1", "j-worker-2"}
    assert gate.asked_since == {"j-worker-1": NOW, "j-worker-2": NOW}
    assert gate.timed_out == ()


def test_a_pod_the_driver_let_go_is_deleted_the_others_still_wait() -> None:
    leavers = [worker(1, "10.0.0.2"), worker(2, "10.0.0.3")]
    since = {"j-worker-1": NOW, "j-worker-2": NOW}
    later = NOW + timedelta(seconds=2)
    gate = decide_leave_gate(
        leavers, head_answers=True, left=["10.0.0.2"], asked_since=since, now=later, timeout_seconds=30
    )
    assert gate.hold == {"j-worker-2"}
    assert gate.asked_since == {"j-worker-2": NOW}  # the first ask counts, not this round's


def test_past_the_bound_a_pod_is_deleted_anyway() -> None:
    leavers = [worker(1, "10.0.0.2")]
    since = {"j-worker-1": NOW}
    just_before = NOW + timedelta(seconds=29)
    kept = decide_leave_gate(
        leavers, head_answers=True, left=(), asked_since=since, now=just_before, timeout_seconds=30
    )
    assert kept.hold == {"j-worker-1"}
    at_bound = NOW + timedelta(seconds=30)
    gone = decide_leave_gate(leavers, head_answers=True, left=(), asked_since=since, now=at_bound, timeout_seconds=30)
    assert gone.hold == frozenset()
    assert gone.timed_out == ("j-worker-1",)
    message = leave_timed_out_message(gone.timed_out, 30)
    assert "spec.elastic.leaveTimeoutSeconds (30 s)" in message and "j-worker-1" in message


def test_nothing_waits_without_a_head_that_answers_or_for_a_pod_without_an_ip() -> None:
    leavers = [worker(1, "10.0.0.2"), worker(2, None)]
    no_head = decide_leave_gate(leavers, head_answers=False, left=(), asked_since={}, now=NOW, timeout_seconds=30)
    assert no_head.hold == frozenset() and no_head.timed_out == ()
    running = decide_leave_gate(leavers, head_answers=True, left=(), asked_since={}, now=NOW, timeout_seconds=30)
    assert running.hold == {"j-worker-1"}  # worker 2 never ran: it has no group to let go
    assert leaving_ips(leavers) == ("10.0.0.2",)


# -- the poll ------------------------------------------------------------------------------------------


def test_the_poll_names_the_leaving_pods_and_the_head_reads_them() -> None:
    url = progress_url("10.0.0.1", 8765, leave=("10.0.0.2", "10.0.0.3"))
    assert url == "http://10.0.0.1:8765/progress?leave=10.0.0.2%2C10.0.0.3"
    path = url.split("8765", 1)[1]
    assert leave_of(path) == ("10.0.0.2", "10.0.0.3")
    assert leave_of("/progress?leave=") == ()  # nobody leaves any more
    assert leave_of("/progress") is None  # a poll that does not say
    both = progress_url("10.0.0.1", 8765, export_request="r1", leave=())
    assert export_request_of(both.split("8765", 1)[1]) == "r1"
    assert leave_of(both.split("8765", 1)[1]) == ()


def test_the_head_answers_the_addresses_whose_groups_left() -> None:
    board, leaves = ProgressBoard(total_steps=10), LeaveRequests()

    def on_leave(addresses: tuple[str, ...]) -> None:
        leaves.ask(addresses)
        board.update(left=leaves.acknowledged())

    server = ProgressServer(board, "127.0.0.1", 0, on_leave=on_leave)
    try:
        first = read_progress("127.0.0.1", server.port, timeout=5, leave=("10.0.0.2", "10.0.0.3"))
        assert first is not None and first.left == []
        assert leaves.asked() == {"10.0.0.2", "10.0.0.3"}
        leaves.done(["10.0.0.2"])  # the driver, at a step boundary
        second = read_progress("127.0.0.1", server.port, timeout=5, leave=("10.0.0.2", "10.0.0.3"))
        assert second is not None and second.left == ["10.0.0.2"]
        cleared = read_progress("127.0.0.1", server.port, timeout=5, leave=())
        assert cleared is not None and cleared.left == [] and leaves.asked() == frozenset()
    finally:
        server.shutdown()


def test_an_older_operator_reads_a_report_with_left() -> None:
    report = ProgressReport.model_validate_json('{"step": 3, "left": ["10.0.0.2"]}')
    assert report.left == ["10.0.0.2"]


# -- the driver: which groups leave ----------------------------------------------------------------------


def test_the_groups_on_asked_addresses_leave_and_every_asked_address_is_acknowledged() -> None:
    groups = {"group1": "10.0.0.1", "group2": "10.0.0.2", "group3": "10.0.0.3"}
    decision = decide_leave(frozenset({"10.0.0.2", "10.0.0.3", "10.0.0.9"}), groups)
    assert decision.remove == ("group2", "group3")
    assert decision.done == {"10.0.0.2", "10.0.0.3", "10.0.0.9"}  # .9 never had a group: nothing to wait for
    assert decide_leave(frozenset(), groups).remove == ()


def test_no_group_starts_again_on_a_node_asked_to_leave() -> None:
    nodes = {"nodeA": "10.0.0.1", "nodeB": "10.0.0.2"}
    assert leaving_nodes(frozenset({"10.0.0.2"}), nodes) == {"nodeB"}


def test_the_mailbox_keeps_the_newest_ask_and_acknowledges_only_what_it_asks() -> None:
    leaves = LeaveRequests()
    leaves.ask(["10.0.0.2", ""])
    assert leaves.asked() == {"10.0.0.2"}
    leaves.done(["10.0.0.2", "10.0.0.5"])  # .5 was not asked: never acknowledged
    assert leaves.acknowledged() == ["10.0.0.2"]
    leaves.ask(["10.0.0.3"])  # a new scale-down: the old answer does not carry over
    assert leaves.acknowledged() == []
    leaves.ask(["10.0.0.2"])  # the same address again (a new pod on that node): not answered yet
    assert leaves.acknowledged() == []


def test_the_survivors_pause_is_measured_from_the_last_commit_before_a_leave_to_the_first_after() -> None:
    pause = LeavePause()
    assert pause.committed(10.0) is None  # no leave yet
    pause.left(["group2"])
    pause.left(["group3"])
    assert pause.committed(11.5) == {"groups": ["group2", "group3"], "pause_seconds": 1.5}
    assert pause.committed(11.8) is None  # once per leave
    line = describe_event("leave_settled", {"groups": ["group2", "group3"], "pause_seconds": 1.5, "step": 67})
    assert line == "leave settled: group2, group3 gone; the others paused 1.50 s between steps at step 67"
    left = describe_event("group_left", {"group": "group2", "step": 66})
    assert left == "group left: group2 at step 66, its pod asked to leave (scale-down)"
