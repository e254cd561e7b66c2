"""The cross-group reduction behind backward (``overlap.asyncReduce``) in the real torchft path.

Four spawned processes run the trainer's own :class:`RankWorker` without Ray (FSDP2 over gloo inside
a group, a real torchft Lighthouse and Managers across groups), as 2 groups x 2 ranks and, on two of
the processes, 2 groups x 1 rank. Every topology trains the same steps with ``asyncReduce: false``
(each FSDP unit's shard averaged in its hook, as before) and ``asyncReduce: true`` (shards queued,
buckets of ``bucketSizeMB`` averaged by a background thread while backward goes on), without a codec
and with bf16. The assertions:

- every step commits in both groups, and the overlapped run ends with parameters and optimizer
  state bit-identical to the synchronous one (gloo fp32 sums of two groups are exact either way;
  bf16 rounds each entry alone, so a bucket's layout cannot change it);
- ``overlap.*`` change what the trainer does: the torchft all-reduces of a step are one per FSDP
  unit when synchronous, and one per bucket when overlapped: with BUCKET_MB two units' shards go
  into one bucket with 2 ranks (half-size shards), each unit alone with 1 rank, and a 25 MiB bucket
  takes the whole model in one all-reduce; the step reports the reduction as mostly hidden.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from tests.trainer.helpers import assert_bit_identical, setup_spawned_rank, spawn_with_lighthouses, tiny_config

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.group import FaultTimeouts, GroupAddress, RankWorker, StepPlan, plain_allreduce
from elastrain_trainer.ledger import Piece

GROUPS = 2
PROCESSES = 4
STEPS = 4
GROUP_BATCH = 4
SAMPLES = 64
#: 30 KiB: with 2 ranks a block's shard is ~25 KiB, so the two blocks fill one bucket; with 1 rank ~50 KiB each.
BUCKET_MB = 0.03

#: case -> (ranks per group, compression, overlap)
CASES: dict[str, tuple[int, dict[str, Any], dict[str, Any]]] = {
    "sync_2x2": (2, {}, {"asyncReduce": False}),
    "async_2x2": (2, {}, {"asyncReduce": True, "bucketSizeMB": BUCKET_MB}),
    "sync_2x1": (1, {}, {"asyncReduce": False}),
    "async_2x1": (1, {}, {"asyncReduce": True, "bucketSizeMB": BUCKET_MB}),
    "one_bucket_2x1": (1, {}, {"asyncReduce": True, "bucketSizeMB": 25.0}),
    "bf16_sync_2x2": (2, {"codec": "bf16"}, {"asyncReduce": False}),
    "bf16_async_2x2": (2, {"codec": "bf16"}, {"asyncReduce": True, "bucketSizeMB": BUCKET_MB}),
}
PAIRS = [("sync_2x2", "async_2x2"), ("sync_2x1", "async_2x1"), ("sync_2x1", "one_bucket_2x1")]
PAIRS += [("bf16_sync_2x2", "bf16_async_2x2")]


class CountingReduce:
    """torchft's plain average; records the size of every all-reduce it starts, by step."""

    def __init__(self, manager: Any, cfg: TrainerConfig) -> None:
        self.manager = manager
        self.inner = plain_allreduce(manager, cfg)
        self.calls: list[tuple[int, int]] = []

    def __call__(self, tensor: torch.Tensor) -> object:
        self.calls.append((int(self.manager.current_step()), tensor.numel()))
        return self.inner(tensor)


def _config(case: str) -> TrainerConfig:
    _, compression, overlap = CASES[case]
    return tiny_config(
        steps=STEPS,
        globalBatchSize=GROUPS * GROUP_BATCH,
        optimizer={"lr": 0.01},
        compression=compression,
        overlap=overlap,
    )


def _run_case(case: str, index: int, lighthouse: str, ports: Any, barrier: Any) -> dict[str, Any]:
    ranks, compression, _ = CASES[case]
    group, rank = divmod(index, 2)
    address = GroupAddress(
        group_id=f"group{group + 1}", store_host="127.0.0.1", store_port=0, lighthouse=lighthouse, world_size=ranks
    )
    worker = RankWorker(
        _config(case).model_dump_json(),
        address,
        rank,
        timeouts=FaultTimeouts(collective_seconds=30, quorum_seconds=120, connect_seconds=30),
        reduce_factory=None if compression else CountingReduce,
    )
    setup_spawned_rank(worker, ports=ports, slot=list(CASES).index(case) * GROUPS + group, barrier=barrier)
    results = []
    for _ in range(STEPS):
        info = worker.quorum()
        start = (info.step * GROUPS + group) * GROUP_BATCH % SAMPLES
        plan = StepPlan(step=info.step, pieces=[Piece(0, start, start + GROUP_BATCH)], weight=1.0, participants=GROUPS)
        results.append(dataclasses.asdict(worker.train(plan)))
    return {
        "results": results,
        "final": worker.state_fingerprint(),
        "calls": list(getattr(worker.steps.reduce, "calls", [])),
        "overlapped": worker.overlapped is not None,
        "units": [tuple(s) for s in _unit_numels(worker)],
        "worker": worker,
    }


def _unit_numels(worker: RankWorker) -> list[list[int]]:
    """Each FSDP unit's reduce-scatter output size on this rank, in forward order."""
    from torch.distributed.fsdp import FSDPModule

    from elastrain_trainer.compression.fsdp_hook import managed_parameters, shard_segments

    units = [m for m in worker.model.modules() if isinstance(m, FSDPModule) and managed_parameters(m)]
    return [[sum(r * c for r, c in shard_segments(u))] for u in units]


def _process(index: int, lighthouses: dict[str, str], ports: Any, barrier: Any, out: str) -> None:
    torch.set_num_threads(1)
    report: dict[str, Any] = {}
    for case, (ranks, _, _) in CASES.items():
        rank = index % 2
        barrier.wait()
        if rank >= ranks:  # 2 groups x 1 rank: processes 0 and 2 train, 1 and 3 wait
            barrier.wait()
            barrier.wait()
            continue
        run = _run_case(case, index, lighthouses[case], ports, barrier)
        # Leave together: a group tearing its process groups down while a peer still talks to it aborts the peer.
        barrier.wait()
        run.pop("worker").shutdown()
        report[case] = run
    torch.save(report, Path(out) / f"process{index}.pt")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Per case, the report of each training process in group-major order."""
    out = tmp_path_factory.mktemp("overlap_torchft")
    reports = spawn_with_lighthouses(_process, list(CASES), groups=GROUPS, processes=PROCESSES, out=out)
    return {case: [r[case] for r in reports if case in r] for case in CASES}


def _groups(processes: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    per_group = len(processes) // GROUPS
    return [processes[g * per_group : (g + 1) * per_group] for g in range(GROUPS)]


@pytest.mark.parametrize("case", list(CASES))
def test_every_step_commits_and_the_groups_agree(runs: dict[str, list[dict[str, Any]]], case: str) -> None:
    assert len(runs[case]) == GROUPS * CASES[case][0]
    for process in runs[case]:
        assert [r["committed"] for r in process["results"]] == [True] * STEPS
        assert {r["participants"] for r in process["results"]} == {GROUPS}
    first, second = _groups(runs[case])
    assert_bit_identical([p["final"] for p in first], [p["final"] for p in second])


@pytest.mark.parametrize(("sync", "overlapped"), PAIRS)
def test_the_overlapped_reduce_trains_bit_identically_to_the_synchronous_one(
    runs: dict[str, list[dict[str, Any]]], sync: str, overlapped: str
) -> None:
    assert [p["overlapped"] for p in runs[sync]] == [False] * len(runs[sync])
    assert [p["overlapped"] for p in runs[overlapped]] == [True] * len(runs[overlapped])
    assert_bit_identical([p["final"] for p in runs[sync]], [p["final"] for p in runs[overlapped]])


def _calls_per_step(process: dict[str, Any]) -> list[list[int]]:
    steps: dict[int, list[int]] = {}
    for step, numel in process["calls"]:
        steps.setdefault(step, []).append(numel)
    return [steps[s] for s in sorted(steps)]


def test_overlap_fields_decide_how_many_all_reduces_a_step_starts(runs: dict[str, list[dict[str, Any]]]) -> None:
    for case in ("sync_2x2", "async_2x2", "sync_2x1", "async_2x1", "one_bucket_2x1"):
        for process in runs[case]:
            root, *blocks = [u[0] for u in process["units"]]  # backward reduces the blocks last-first, the root last
            per_step = _calls_per_step(process)
            assert len(per_step) == STEPS, process["calls"]
            ranks = CASES[case][0]
            if case.startswith("sync"):
                expected = [*reversed(blocks), root]
            elif case == "one_bucket_2x1":
                expected = [root + sum(blocks)]
            elif ranks == 2:
                expected = [sum(blocks), root]  # each block < BUCKET_MB, two fill it
            else:
                expected = [*reversed(blocks), root]  # each block alone >= BUCKET_MB
            assert per_step == [expected] * STEPS, (case, process["units"])


def test_the_overlapped_step_reports_its_reduction_and_how_much_was_exposed(
    runs: dict[str, list[dict[str, Any]]],
) -> None:
    for case in ("sync_2x2", "async_2x2"):
        for process in runs[case]:
            for result in process["results"]:
                extra = result["extra"]
                assert extra["phase_reduce_total"] > 0, extra
                assert extra["phase_reduce_exposed"] >= 0, extra
                if case.startswith("sync"):
                    assert extra["phase_reduce_exposed"] == extra["phase_reduce_total"]
                assert result["comm_seconds"] >= extra["phase_reduce_exposed"]
