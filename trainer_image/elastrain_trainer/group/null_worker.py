"""A rank that does no computation: the driver's control path measured alone (benchmarks/driver_scale.py).

:class:`NullRankWorker` answers every call the driver makes on a :class:`~.worker.RankWorker` with the
same messages, in the same order, from a process that never imports torch: its quorum is every group
of the run (``groups``), its step sleeps the plan's ``delay_seconds`` (the simulated compute the
driver's work can hide behind) and commits. A test-only seam (``DriverOptions.worker_seam``), never
used by a real run.
"""

from __future__ import annotations

import time
from typing import Any

from elastrain_trainer.group.messages import GroupAddress, QuorumInfo, StepPlan, StepResult

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
        self.quorums = 0
        self.calls = 0
        """Step calls answered (quorum and train): the driver's per-step control messages to this rank."""

    def open_store(self) -> int:
        return 0

    def setup(self, resume_step: int | None = None, store_port: int | None = None) -> int:
        return self.step

    def quorum(self) -> QuorumInfo:
        self.calls += 1
        self.quorums += 1
        return QuorumInfo(
            group_id=self.address.group_id,
            rank=self.rank,
            quorum_id=self.quorums,
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
        )

    def flush(self) -> int | None:
        return None

    def call_count(self) -> int:
        """Step calls this rank answered."""
        return self.calls

    def shutdown(self) -> None:
        pass
