"""A full checkpoint volume under a running job: CheckpointsFailing and its Event while the job trains on.

The operator runs under KopfRunner; the development pod runner runs the job's head and worker as
local processes (the real ``elastrain pod head`` and worker). Checkpoints go to a 4 MB tmpfs this
test mounts (the machine runs the tests as root). Once a checkpoint is complete the test fills the
volume: the operator must set ``CheckpointsFailing`` (reason ``CheckpointSaveFailed``, the cause
and the last complete step in its message) and record one Warning Event, while the job stays
``Running`` and ``status.progress.lastCheckpointStep`` (the CHECKPOINT column) keeps the last
complete step. When the room returns and a save succeeds the condition turns False (reason
``CheckpointSaved``) with a Normal Event.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from tests.smallvolume import mounted_tmpfs, top_up

from elastrain_dev.jobdriver import JobDriver
from elastrain_dev.podrunner import RUN_LABEL, PodRunner
from elastrain_dev.wait import until

MODEL = {"dim": 32, "numHeads": 2, "numLayers": 1, "seqLen": 16, "vocabSize": 64}


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs of the test's own."""
    with mounted_tmpfs(tmp_path / "ckpt") as mount:
        yield mount


def _top_up(volume: Path, fillers: list[Path]) -> None:
    top_up(volume, fillers, leave=20_000)


def _condition(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == "CheckpointsFailing"), None)


def test_a_full_checkpoint_volume_sets_checkpoints_failing_while_the_job_trains_and_clears_after_a_save(
    idle_job: JobDriver, operator: KopfRunner, runner: PodRunner, volume: Path
) -> None:
    job = idle_job
    job.create(
        device="cpu",
        replicas=1,
        elastic={"minReplicas": 1, "maxReplicas": 1},
        acceleratorsPerWorker=1,
        pod={"labels": {RUN_LABEL: "true"}},
        checkpoint={"uri": f"file://{volume}", "intervalSteps": 5, "keep": 2},
        trainer={
            "steps": 100000,
            "globalBatchSize": 8,
            "model": MODEL,
            "lrSchedule": {"warmupSteps": 2},
            "data": {"syntheticTokens": 16 * 256, "numShards": 8},
        },
    )
    good = until(
        lambda: (job.status().get("progress") or {}).get("lastCheckpointStep"),
        what="a complete checkpoint",
        timeout=300,  # on a loaded machine a worker's Ray node may fail to join once and be replaced
    )
    fillers: list[Path] = []

    def full() -> dict[str, Any] | None:
        # Topped up on every probe: a save already in flight when the volume filled prunes an older
        # checkpoint when it completes, which would give the next save its room back.
        _top_up(volume, fillers)
        status = job.status()
        condition = _condition(status)
        return status if condition is not None and condition["status"] == "True" else None

    status = until(full, what="CheckpointsFailing=True", timeout=120)
    failing = _condition(status)
    assert failing is not None and failing["reason"] == "CheckpointSaveFailed", status
    assert failing["message"].startswith(f"no space left on device at file://{volume} ("), failing
    last_good = status["progress"]["lastCheckpointStep"]
    assert last_good >= good and f"the last complete checkpoint is step {last_good}" in failing["message"]
    assert status["phase"] == "Running", status
    warnings = [e for e in job.events() if e["reason"] == "CheckpointSaveFailed"]
    assert [e["type"] for e in warnings] == ["Warning"], warnings
    assert f"no space left on device at file://{volume}" in warnings[0]["message"]
    # Training goes on while saves fail; the CHECKPOINT column keeps the last good step.
    step = status["progress"]["step"]
    later = until(
        lambda: (s := job.status())["progress"]["step"] >= step + 10 and s, what="ten more steps", timeout=120
    )
    assert later["progress"]["lastCheckpointStep"] == last_good and later["phase"] == "Running", later
    assert [e["type"] for e in job.events() if e["reason"] == "CheckpointSaveFailed"] == ["Warning"]
    for filler in fillers:
        filler.unlink()
    cleared = until(
        lambda: (s := job.status()) and (c := _condition(s)) and c["status"] == "False" and s,
        what="CheckpointsFailing=False after a save",
        timeout=120,
    )
    condition = _condition(cleared)
    assert condition is not None and condition["reason"] == "CheckpointSaved", cleared
    assert cleared["progress"]["lastCheckpointStep"] > last_good and cleared["phase"] == "Running", cleared
    assert any(e["reason"] == "CheckpointSaved" and e["type"] == "Normal" for e in job.events())
    job.kubectl("delete", "tj", job.name, "--wait=false")
