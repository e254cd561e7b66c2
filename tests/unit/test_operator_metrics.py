"""The operator's counters of resizes and of time at a reduced size, round by round.

Status times carry whole seconds; a loss and the grow-back can fall in the same second (the operator
replaces a lost worker within a fraction of one), and both must still be counted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from elastrain_operator.api import JobPhase, Reason, TrainingJobStatus
from elastrain_operator.api.status import ResizeRecord, WorkersStatus
from elastrain_operator.handlers import metrics
from elastrain_operator.reconcile.decide import Decision

T = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
DECISION = Decision(JobPhase.RUNNING, Reason.WORKERS_READY, "")


def resize(a: int, b: int, reason: str) -> ResizeRecord:
    return ResizeRecord.model_validate({"time": T, "from": a, "to": b, "reason": reason})


def status(ready: int, *records: ResizeRecord) -> TrainingJobStatus:
    return TrainingJobStatus(
        phase=JobPhase.RUNNING, workers=WorkersStatus(desired=3, ready=ready), resizes=list(records) or None
    )


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def job(request: pytest.FixtureRequest) -> Iterator[str]:
    """A job name of this test's own (the counters and the last-round clock are process-wide)."""
    name = request.node.name
    yield name
    metrics.record_phase("ns", name, None)


def test_a_loss_and_the_grow_back_in_the_same_second_are_two_resizes(job: str) -> None:
    lost, back = resize(3, 2, "WorkerLost"), resize(2, 3, "ScaledUp")
    before = {r: sample("elastrain_resizes_total", reason=r) for r in ("WorkerLost", "ScaledUp")}
    rounds = [(None, status(3)), (status(3), status(2, lost)), (status(2, lost), status(3, lost, back))]
    rounds += [(status(3, lost, back), status(3, lost, back))]  # nothing new: nothing counted
    for prior, now in rounds:
        metrics.record_round("ns", job, decision=DECISION, status=now, prior=prior, now=T)
    after = {r: sample("elastrain_resizes_total", reason=r) for r in ("WorkerLost", "ScaledUp")}
    assert {r: after[r] - before[r] for r in after} == {"WorkerLost": 1.0, "ScaledUp": 1.0}


def test_a_capped_history_still_counts_the_new_record(job: str) -> None:
    full = [resize(3, 2, "WorkerLost"), resize(2, 3, "ScaledUp")] * 10
    before = sample("elastrain_resizes_total", reason="WorkerLost")
    metrics.record_round(
        "ns",
        job,
        decision=DECISION,
        status=status(2, *full[1:], resize(3, 2, "WorkerLost")),
        prior=status(3, *full),
        now=T,
    )
    assert sample("elastrain_resizes_total", reason="WorkerLost") - before == 1.0


def test_time_at_a_reduced_size_counts_fractions_of_a_second(job: str) -> None:
    before = sample("elastrain_reduced_size_seconds_total")
    metrics.record_round("ns", job, decision=DECISION, status=status(2), prior=status(3), now=T)
    time.sleep(0.2)
    metrics.record_round("ns", job, decision=DECISION, status=status(2), prior=status(2), now=T)  # same status second
    assert 0.2 <= sample("elastrain_reduced_size_seconds_total") - before < 5.0
