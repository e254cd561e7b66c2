"""A group lost in the middle of an overlapped cross-group reduction: the step is applied nowhere.

Two replica groups of one rank, one per simulated pod, with ``overlap.asyncReduce`` and buckets so
small that every FSDP unit is its own bucket. At FAULT_STEP the first group's rank exits right after
its first bucket's all-reduce finished, while backward still runs (the background thread's next
bucket never starts). The survivor's next bucket fails, so torchft must not commit the step there:
the driver gives every piece of the attempt back and the ledger stays exact (each sample trained
once, in a committed step), and the survivor goes on alone.
"""

from __future__ import annotations

from tests.trainer.helpers import count_samples, fast_options, tiny_config
from tests.trainer.mid_reduce_fault import FAULT_STEP, VICTIM, dying_reduce

from elastrain_trainer.driver import Driver
from elastrain_trainer.driver.options import WorkerSeam
from elastrain_trainer.group import RankWorker
from elastrain_trainer.localmode import LocalCluster


def test_a_group_lost_mid_overlapped_reduce_leaves_the_step_applied_nowhere(two_pods: LocalCluster) -> None:
    cfg = tiny_config(
        steps=6,
        globalBatchSize=16,
        data={"syntheticTokens": 1024, "numShards": 4},
        overlap={"asyncReduce": True, "bucketSizeMB": 0.001},
    )
    seam = WorkerSeam(RankWorker, {"reduce_factory": dying_reduce})
    driver = Driver(cfg, fast_options(start_groups=2, worker_seam=seam))
    try:
        result = driver.run()
    finally:
        driver.shutdown()
    story = "\n".join(map(str, result.events))
    attempts = [(m.step, m.committed, m.groups) for m in result.metrics]
    print(f"\nlost mid overlapped reduce: attempts {attempts}")

    assert result.step == cfg.steps, story
    lost = [e for e in result.events if e["kind"] == "group_lost"]
    assert [e["group"] for e in lost] == [VICTIM], story
    # The attempt of FAULT_STEP that lost the victim committed nowhere; the step was trained again.
    failed = [m for m in result.metrics if not m.committed]
    assert [m.step for m in failed] == [FAULT_STEP], attempts
    assert VICTIM not in result.committed[FAULT_STEP], story
    # No sample trained twice, none lost: the driver's record and the ledger's audit agree.
    counts = count_samples(result.committed)
    assert sorted(counts[0]) == list(range(result.ledger.num_samples))
    for epoch, counter in counts.items():
        assert set(counter.values()) == {1}, f"epoch {epoch} trained samples twice: {counter}"
        audit = result.ledger.audit(epoch)
        assert audit.duplicated == 0 and audit.trained == len(counter), audit
    assert result.ledger.audit(0).exact, result.ledger.audit(0)
