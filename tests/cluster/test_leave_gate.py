"""A scale-down through the operator's real rounds on the real API server: pods wait for the driver.

A real :class:`ProgressServer` with the driver's :class:`LeaveRequests` mailbox on loopback stands in for
the head pod (whose KWOK address serves nothing). ``kubectl scale`` 3 -> 1: the rounds name both leaving
pods' IPs on the poll and delete neither; once the "driver" lets one go, that one is deleted; the other
is deleted when ``elastic.leaveTimeoutSeconds`` has passed, with a Warning Event ``LeaveTimedOut``; then
one poll tells the head that nobody leaves any more.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from tests.cluster.conftest import BASE_JOB

from elastrain_dev.cluster import LocalCluster
from elastrain_dev.jobdriver import JobDriver
from elastrain_dev.wait import until
from elastrain_operator.handlers.reconciler import Writer, reconcile_job
from elastrain_operator.kube.progress import read_progress
from elastrain_trainer.config.progress import ProgressReport
from elastrain_trainer.driver.leave import LeaveRequests
from elastrain_trainer.pod.progress import ProgressBoard, ProgressServer

TIMEOUT = 8


@pytest.fixture
def head() -> Iterator[tuple[LeaveRequests, int]]:
    board, leaves = ProgressBoard(total_steps=50), LeaveRequests()

    def on_leave(addresses: tuple[str, ...]) -> None:
        leaves.ask(addresses)
        board.update(left=leaves.acknowledged())

    server = ProgressServer(board, "127.0.0.1", 0, on_leave=on_leave)
    yield leaves, server.port
    server.shutdown()


def test_scaled_down_pods_wait_for_the_driver_within_the_bound(
    cluster: LocalCluster, namespace: str, writer: Writer, head: tuple[LeaveRequests, int]
) -> None:
    leaves, port = head
    asked: list[tuple[str, ...] | None] = []
    notes: list[tuple[str, str, str]] = []

    def poll(ip: str, leave: tuple[str, ...] | None = None) -> ProgressReport | None:
        asked.append(leave)
        return read_progress("127.0.0.1", port, timeout=5, leave=leave)

    def rounds(job: JobDriver, n: int = 1) -> bool:
        for _ in range(n):
            assert reconcile_job(writer, namespace, job.name, lambda *note: notes.append(note), progress=poll)
            time.sleep(0.2)
        return False

    job = JobDriver(cluster, namespace, base=BASE_JOB, name="leaving")
    job.create(replicas=3, elastic={"minReplicas": 1, "maxReplicas": 3, "leaveTimeoutSeconds": TIMEOUT})
    until(lambda: rounds(job) or job.status().get("phase") == "Running", what="a Running job", timeout=90)
    assert set(asked) == {None}  # nobody leaving: the poll says nothing about it
    ips = {name: pod["status"]["podIP"] for name, pod in job.pods().items()}

    job.kubectl("scale", "tj", job.name, "--replicas=1")
    leaving = {ips["leaving-worker-1"], ips["leaving-worker-2"]}
    until(lambda: rounds(job) or leaves.asked() == leaving, what="the leaving pods at the head", timeout=30)
    rounds(job, 3)
    assert {k[1] for k in job.live() if k[0] == "worker"} == {0, 1, 2}  # held: the driver has not answered

    leaves.done([ips["leaving-worker-1"]])  # the driver let worker 1's group go at a step boundary
    until(lambda: rounds(job) or ("worker", 1) not in job.live(), what="worker 1 deleted", timeout=30)

    # Worker 2's group never leaves: the bound deletes it anyway, and says so.
    until(lambda: rounds(job) or ("worker", 2) not in job.live(), what="worker 2 deleted", timeout=60)
    [timed_out] = [n for n in notes if n[1] == "LeaveTimedOut"]  # for worker 2 only: worker 1 went when let go
    assert timed_out[0] == "Warning" and f"({TIMEOUT} s)" in timed_out[2], timed_out
    assert "leaving-worker-2" in timed_out[2] and "leaving-worker-1" not in timed_out[2], timed_out
    until(lambda: rounds(job) or leaves.asked() == frozenset(), what="the head told nobody leaves", timeout=30)
    resizes = job.status().get("resizes") or []
    downs = [r for r in resizes if r["to"] < r["from"]]
    assert downs and {r["reason"] for r in downs} == {"ScaledDown"}, resizes
