"""An export asked for on a running job, through the operator's real rounds on the real API server.

``kubectl annotate tj NAME elastrain.dev/export-request=ID`` reaches the head's progress server as
``?exportRequest=ID`` on the operator's poll (a real :class:`ProgressServer` on loopback stands in for
the head pod, whose KWOK address serves nothing); the head's answer in the progress report becomes
``status.exportRequest`` and one Event, and the id is asked no more. A job without ``spec.export`` is
refused by the operator without asking the head.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.cluster.conftest import BASE_JOB

from elastrain_dev.cluster import LocalCluster
from elastrain_dev.jobdriver import JobDriver
from elastrain_dev.wait import until
from elastrain_operator.handlers.reconciler import Writer, reconcile_job
from elastrain_operator.kube.progress import read_progress
from elastrain_trainer.config.progress import ExportRequestReport, ProgressReport
from elastrain_trainer.driver.export_request import ExportRequests
from elastrain_trainer.pod.progress import ProgressBoard, ProgressServer

ANNOTATION = "elastrain.dev/export-request"


@pytest.fixture
def head() -> Iterator[tuple[ProgressBoard, ExportRequests, int]]:
    board, requests = ProgressBoard(total_steps=50), ExportRequests()
    server = ProgressServer(board, "127.0.0.1", 0, on_export_request=requests.ask)
    yield board, requests, server.port
    server.shutdown()


def test_an_export_request_travels_from_the_annotation_to_the_head_and_back(
    cluster: LocalCluster, namespace: str, writer: Writer, head: tuple[ProgressBoard, ExportRequests, int]
) -> None:
    board, requests, port = head
    asked: list[str | None] = []
    notes: list[tuple[str, str, str]] = []

    def poll(ip: str, export_request: str | None = None) -> ProgressReport | None:
        asked.append(export_request)
        return read_progress("127.0.0.1", port, timeout=5, export_request=export_request)

    def rounds(job: JobDriver, n: int = 1) -> bool:
        """``n`` reconcile rounds of ``job``; False (so ``until`` probes go on to their condition)."""
        for _ in range(n):
            assert reconcile_job(writer, namespace, job.name, lambda *note: notes.append(note), progress=poll)
            time.sleep(0.2)
        return False

    job = JobDriver(cluster, namespace, base=BASE_JOB, name="exporting")
    job.create(export={"uri": "file:///export"})
    until(lambda: rounds(job) or job.status().get("phase") == "Running", what="a Running job", timeout=90)
    assert set(asked) == {None}  # no annotation: the poll asks nothing

    job.kubectl("annotate", "tj", job.name, f"{ANNOTATION}=before-lr-drop")
    until(lambda: rounds(job) or requests.pending() == "before-lr-drop", what="the id at the head", timeout=30)
    assert job.status().get("exportRequest") is None  # asked, not answered yet

    # The head's driver serves it at a step boundary and says so in its report.
    board.update(export_request=ExportRequestReport(request_id="before-lr-drop", step=7, path="/export/step-7"))
    until(lambda: rounds(job) or job.status().get("exportRequest"), what="status.exportRequest", timeout=30)
    assert job.status()["exportRequest"] == {
        "requestId": "before-lr-drop",
        "state": "Exported",
        "path": "/export/step-7",
        "step": 7,
    }
    rounds(job, 5)
    asked.clear()
    rounds(job, 3)
    assert asked == [None, None, None]  # answered: not asked again
    told = [n for n in notes if n[1] == "ExportedOnRequest"]
    assert len(told) == 1 and "/export/step-7" in told[0][2] and told[0][0] == "Normal", notes

    # A job without spec.export: refused by the operator, the head never asked.
    plain = JobDriver(cluster, namespace, base=BASE_JOB, name="plain")
    plain.create()
    plain.kubectl("annotate", "tj", plain.name, f"{ANNOTATION}=r1")
    asked.clear()
    until(lambda: rounds(plain) or plain.status().get("exportRequest"), what="the refusal", timeout=60)
    rounds(plain, 3)
    status: dict[str, Any] = plain.status()["exportRequest"]
    assert status["requestId"] == "r1" and status["state"] == "Refused"
    assert "spec.export" in status["message"] and "set spec.export (uri or pvc)" in status["message"]
    refused = [n for n in notes if n[1] == "ExportRequestRefused"]
    assert len(refused) == 1 and refused[0][0] == "Warning" and refused[0][2] == status["message"], notes
    assert "r1" not in asked and requests.pending() == "before-lr-drop"
