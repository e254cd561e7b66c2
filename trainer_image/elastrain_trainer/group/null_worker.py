"""A rank that does no computation: the driver's control path measured alone (benchmarks/driver_scale.py).

:class:`NullRankWorker` answers every call the driver makes on a :class:`~.worker.RankWorker` with the
same messages, in the same order, from a process that never imports torch: its quorum is every group
of the run (``groups``), its step sleeps the plan's ``delay_seconds`` (the simulated compute the
driver's work can hide behind) and commits. A test-only seam (``DriverOptions.worker_seam``), never
used by a real run.

As the group's leader it answers for its ranks itself: the followers' share of the control path
(the leader's store round trip to them, :mod:`.control`) runs inside the group, beside the driver,
and is measured apart by the benchmark. A follower's :meth:`NullRankWorker.follow` only waits for
the leader's release (a marker file; releases are rare: before an evaluation, at the end).
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from elastrain_trainer.group.messages import GroupAddress, QuorumInfo, StepPlan, StepResult

#: Seconds between a null follower's looks for the release marker.
RELEASE_POLL_SECONDS = 0.05

#: Tokens per sample the null step reports (the driver's throughput balance needs some).
NULL_TOKENS_PER_SAMPLE = 16


class NullRankWorker:
    """Rank ``rank`` of a group whose steps do nothing; counts the calls it answers."""

    def __init__(self, cfg_json: str, address: GroupAddress, rank: int, *, groups: int = 1, **_: Any) -> None:
        """``groups``: how many groups the run has (every quorum has all of them)."""
        self.address = address
        self.rank = rank
        self.world = address.world_size
        self.groups = groups
        self.step = 0
        self.calls = 0
        """Control calls answered (quorum, train, their leader forms, follow, release): the driver's messages."""

    def _release_marker(self, rank: int) -> Path:
        run = hashlib.sha1(f"{self.address.lighthouse}/{self.address.group_id}".encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"elastrain-null-release-{run}-{rank}"

    def open_store(self) -> int:
        return 0

    def setup(self, resume_step: int | None = None, store_port: int | None = None) -> int:
        return self.step

    def quorum(self) -> QuorumInfo:
        self.calls += 1
        return self._quorum_info()

    def _quorum_info(self) -> QuorumInfo:
        """Every group of the run, at this rank's step; the id changes only with membership (as torchft's)."""
        return QuorumInfo(
            group_id=self.address.group_id,
            rank=self.rank,
            quorum_id=1,
            participants=self.groups,
            replica_rank=None,
            step=self.step,
            healed=False,
            heal_seconds=0.0,
        )

    def train(self, plan: StepPlan) -> StepResult:
        self.calls += 1
        return self._run(plan)

    def _run(self, plan: StepPlan) -> StepResult:
        start = time.perf_counter()
        if plan.delay_seconds:
            time.sleep(plan.delay_seconds)
        samples = sum(p.stop - p.start for p in plan.pieces)
        mine = samples // self.world + (1 if self.rank < samples % self.world else 0)
        self.step = plan.step + 1
        seconds = time.perf_counter() - start
        next_quorum = replace(self._quorum_info(), rank=self.rank) if plan.quorum_after else None
        return StepResult(
            group_id=self.address.group_id,
            rank=self.rank,
            step=self.step,
            committed=True,
            loss_sum=float(mine * NULL_TOKENS_PER_SAMPLE),
            tokens=mine * NULL_TOKENS_PER_SAMPLE,
            samples=mine,
            compute_seconds=max(seconds, 1e-4),
            comm_seconds=0.0,
            step_seconds=max(seconds, 1e-4),
            participants=self.groups,
            next_quorum=next_quorum,
        )

    def lead_quorum(self) -> list[QuorumInfo]:
        info = self.quorum()  # counts the call
        return [info, *(replace(info, rank=rank) for rank in range(1, self.world))]

    def lead_train(self, plan: StepPlan) -> list[StepResult]:
        self.calls += 1
        results = []
        for rank in range(self.world):
            self.rank = rank
            results.append(self._run(plan if rank == 0 else replace(plan, delay_seconds=0.0)))
        self.rank = 0
        return results

    def release(self) -> None:
        self.calls += 1
        for rank in range(1, self.world):
            self._release_marker(rank).touch()

    def follow(self) -> str:
        self.calls += 1
        marker = self._release_marker(self.rank)
        while not marker.exists():
            time.sleep(RELEASE_POLL_SECONDS)
        marker.unlink(missing_ok=True)
        return "released"

    def flush(self) -> int | None:
        return None

    def call_count(self) -> int:
        """Step calls this rank answered."""
        return self.calls

    def shutdown(self) -> None:
        pass
