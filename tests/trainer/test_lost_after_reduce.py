"""A group that dies after the cross-group all-reduce: its samples count once, in the committed step.

Two replica groups of one rank, one per simulated pod. At one step the first group's rank exits
right after its gradient went into the all-reduce (the ``exit_after_reduce`` fault seam), before
the step resolved. The survivor's update then holds that gradient; the ledger must record the lost
group's pieces with the step rather than hand them out again.
"""

from __future__ import annotations

from tests.trainer.helpers import count_samples, fast_options, tiny_config

from elastrain_trainer.driver import Driver
from elastrain_trainer.driver.loop import ExitAfterReduce
from elastrain_trainer.localmode import LocalCluster

FAULT_STEP = 2
VICTIM = "group1"  # the driver names its groups group1, group2, ... in start order


def test_group_lost_after_the_all_reduce_is_trained_once_by_the_committed_step(two_pods: LocalCluster) -> None:
    cfg = tiny_config(steps=6, globalBatchSize=16, data={"syntheticTokens": 1024, "numShards": 4})
    driver = Driver(cfg, fast_options(start_groups=2, exit_after_reduce=ExitAfterReduce(VICTIM, FAULT_STEP)))
    try:
        result = driver.run()
    finally:
        driver.shutdown()
    story = "\n".join(map(str, result.events))
    lost = [e for e in result.events if e["kind"] == "group_lost"]
    print(f"\nlost after reduce: {lost}; attempts {[(m.step, m.committed) for m in result.metrics]}")

    assert result.step == cfg.steps, story
    assert [(e["group"], e["during_step"]) for e in lost] == [(VICTIM, FAULT_STEP)], story
    # The survivor committed the step, and the victim's pieces were recorded with it.
    assert set(result.committed[FAULT_STEP]) == {VICTIM, "group2"}, story
    assert sum(p.size for p in result.committed[FAULT_STEP][VICTIM]) > 0
    # No sample trained twice, none lost: the driver's record and the ledger's audit agree.
    counts = count_samples(result.committed)
    num_samples = result.ledger.num_samples
    assert sorted(counts[0]) == list(range(num_samples))
    for epoch, counter in counts.items():
        assert set(counter.values()) == {1}, f"epoch {epoch} trained samples twice: {counter}"
        audit = result.ledger.audit(epoch)
        assert audit.duplicated == 0 and audit.trained == len(counter), audit
    assert result.ledger.audit(0).exact, result.ledger.audit(0)
