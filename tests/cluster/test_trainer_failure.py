"""A trainer that fails says why through `kubectl`: the real head pod's last words reach the job.

The operator runs under KopfRunner; the development pod runner runs the job's pods as local
processes, so the head is the real ``elastrain pod head`` (Ray head, then the driver). Its token
file does not exist: the driver cannot load the data, the head writes why to its termination log
and exits 1, the container status carries the message, and the operator quotes it in the job's
Failed condition and in the Warning Event, where `kubectl describe tj` shows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kopf.testing import KopfRunner

from elastrain_dev.jobdriver import JobDriver
from elastrain_dev.podrunner import RUN_LABEL, PodRunner
from elastrain_dev.wait import until


def _failed_condition(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == "Failed" and c["status"] == "True"), None)


def test_a_trainer_error_is_quoted_in_the_failed_condition_and_event(
    job: JobDriver, operator: KopfRunner, runner: PodRunner, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-dir" / "tokens.bin"
    job.create(
        device="cpu",
        replicas=1,
        elastic={"minReplicas": 1, "maxReplicas": 1},
        acceleratorsPerWorker=1,
        pod={"labels": {RUN_LABEL: "true"}},
        trainer={
            "steps": 20,
            "globalBatchSize": 4,
            "model": {"dim": 32, "numHeads": 2, "numLayers": 1, "seqLen": 16, "vocabSize": 64},
            "data": {"source": "file", "path": str(missing), "numShards": 4},
        },
    )
    status = until(lambda: (s := job.status()).get("phase") == "Failed" and s, what="the job Failed", timeout=180)
    failed = _failed_condition(status)
    assert failed is not None, status
    message = failed["message"]
    assert "-head" in message and "exit code 1" in message, message
    assert "trainer: FileNotFoundError" in message and str(missing) in message, message

    warnings = [e["message"] for e in job.events() if e["type"] == "Warning"]
    assert any(str(missing) in m for m in warnings), warnings
    described = job.kubectl("describe", "tj", job.name).stdout
    assert str(missing) in described, described
