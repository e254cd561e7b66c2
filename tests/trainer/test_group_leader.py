"""One control call per group: a rank that dies mid-step, the leader or one of its followers, loses its group only.

The driver calls each group's leader (rank 0) once per phase; the leader hands the step to its
other ranks over the group's store while they sit in a ``follow`` call. Two pods of two ranks
(real Ray, torch gloo, torchft); the victim group's steps are slowed so the kill lands while it
trains. The survivor goes on, the step in flight is settled exactly once, and the replacement
group heals to the survivor's state bit for bit.
"""

from __future__ import annotations

import threading
import time

import pytest
import ray
from tests.trainer.helpers import (
    assert_bit_identical,
    count_samples,
    fast_options,
    tiny_config,
    wait_for_replacement,
)

from elastrain_trainer.driver import Driver
from elastrain_trainer.localmode import LocalCluster

#: Seconds the victim's steps sleep after backward, so a kill lands inside its train phase.
VICTIM_STEP_SECONDS = 1.5
#: Seconds the test waits for the replacement group (or the kill's moment) before it fails.
WAIT_SECONDS = 180.0


@pytest.mark.parametrize("rank", [1, 0], ids=["follower", "leader"])
def test_a_rank_killed_mid_step_loses_its_group_only_and_the_step_settles_once(
    ray_pods: LocalCluster, rank: int
) -> None:
    cfg = tiny_config(steps=14, globalBatchSize=8, data={"syntheticTokens": 1024, "numShards": 6})
    victim_node = ray_pods.pod_ids()[1]
    driver = Driver(cfg, fast_options(start_groups=2, group_delays={victim_node: VICTIM_STEP_SECONDS}))
    state: dict[str, object] = {}

    def kill_mid_step(d: Driver, step: int) -> None:
        """Wait until the driver is in the train phase of ``step``, then kill rank ``rank`` of the victim."""
        deadline = time.monotonic() + WAIT_SECONDS
        while d._training_step != step and time.monotonic() < deadline:
            time.sleep(0.01)
        state["killed_during"] = d._training_step
        ray.kill(d.groups[str(state["victim"])].actors[rank], no_restart=True)

    def hook(d: Driver, step: int) -> None:
        together = len(d.committed) >= 2 and all(len(a) == 2 for a in d.committed[-2:])
        if "victim" not in state and together:
            victim = next(g for g in d.groups.values() if g.node_id == victim_node)
            survivor = next(g for g in d.groups.values() if g.node_id != victim_node)
            state.update(victim=victim.group_id, survivor=survivor.group_id, step=step)
            threading.Thread(target=kill_mid_step, args=(d, step), daemon=True).start()
        if "victim" in state and step >= cfg.steps - 3:
            wait_for_replacement(d, victim_node, state["victim"], timeout=WAIT_SECONDS)

    try:
        result = driver.run(hook=hook)
        fingerprints = driver.fingerprints()
        final_groups = sorted(driver.groups)
    finally:
        driver.shutdown()
    story = "\n".join(map(str, result.events))
    assert result.step == cfg.steps, story
    assert state["killed_during"] == state["step"], story
    kinds = [e["kind"] for e in result.events]
    assert "restored" not in kinds and "restart_from_scratch" not in kinds, story
    lost = [e for e in result.events if e["kind"] == "group_lost"]
    assert [e["group"] for e in lost] == [state["victim"]], story
    # Lost in the step it was training, for a rank that died (not an error of the trainer's code).
    assert lost[0]["during_step"] == state["step"], story
    assert "(the rank process died)" in lost[0]["reason"], story
    survivor = str(state["survivor"])
    first = next(i for i, a in enumerate(result.committed) if survivor in a)
    assert all(survivor in a for a in result.committed[first:]), story
    newcomer = next(g for g in final_groups if g not in (survivor, state["victim"]))
    assert newcomer in result.committed[-1], story
    assert_bit_identical(fingerprints[survivor], fingerprints[newcomer])
    # Ledger audit: every sample of each finished epoch trained exactly once, the killed step's included.
    counts = count_samples(result.committed)
    finished = [e for e in counts if result.ledger.audit(e).trained == result.ledger.num_samples]
    assert finished, story
    for epoch in finished:
        assert result.ledger.audit(epoch).exact
        assert sorted(counts[epoch].values()) == [1] * result.ledger.num_samples
