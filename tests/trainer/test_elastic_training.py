"""Live elasticity on a real local Ray cluster: FSDP2 inside each group, torchft across groups.

Every test drives the real driver with real rank actors (torch gloo on CPU, torchft Lighthouse
and Managers); the only simulated things are the pods (Ray nodes on this machine).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
import torch
from tests.trainer.helpers import (
    assert_bit_identical,
    count_samples,
    fast_options,
    full_parameters,
    kill_every_group,
    reference_run,
    tiny_config,
    wait_for_replacement,
)

from elastrain_trainer.checkpoint import CheckpointStore
from elastrain_trainer.driver import Driver
from elastrain_trainer.localmode import LocalCluster

#: Equivalence with the single-process reference: float32 sums in another order (FSDP
#: reduce-scatter, torchft average, per-rank loss sums) differ in the last bits only.
LOSS_RTOL = 1e-5
PARAM_ATOL = 1e-5


@pytest.mark.parametrize("strategy", ["fsdp", "ddp"])
def test_two_groups_with_a_slow_one_match_a_single_process(ray_pods: LocalCluster, strategy: str) -> None:
    """(a) + load balance: 2 groups x 2 ranks, one slowed down; same losses and parameters as one process."""
    cfg = tiny_config(steps=5, globalBatchSize=12, parallelism={"strategy": strategy}, evalIntervalSteps=5)
    slow = ray_pods.pod_ids()[1]
    driver = Driver(cfg, fast_options(group_delays={slow: 0.3}, start_groups=2))
    held_out = driver.eval_range
    try:
        result = driver.run()
        fingerprints = driver.fingerprints()
        groups = {g.node_id: g.group_id for g in driver.groups.values()}
    finally:
        driver.shutdown()
    committed = [m for m in result.metrics if m.committed]
    assert result.step == cfg.steps
    # Both groups took part in every step, and the slow one got the smaller share.
    assert all(set(a) == set(groups.values()) for a in result.committed)
    last = result.committed[-1]
    sizes = {g: sum(p.size for p in pieces) for g, pieces in last.items()}
    assert sizes[groups[slow]] < min(v for g, v in sizes.items() if g != groups[slow])
    assert sum(sizes.values()) == cfg.global_batch_size
    losses, params, val_loss = reference_run(cfg, result.committed, held_out)
    assert [m.loss for m in committed] == pytest.approx(losses, rel=LOSS_RTOL)
    # Evaluation at step 5 on the held-out samples (never handed out by the ledger).
    assert len(held_out) == 3 and result.ledger.num_samples == held_out.start
    assert committed[-1].val_loss == pytest.approx(val_loss, rel=LOSS_RTOL)
    assert [m.step for m in committed if m.val_loss is not None] == [5]
    for ranks in fingerprints.values():
        full = full_parameters(ranks) if strategy == "fsdp" else ranks[0]["model"]
        for name, expected in params.items():
            torch.testing.assert_close(full[name], expected, rtol=0, atol=PARAM_ATOL, msg=name)


def test_losing_a_group_keeps_the_others_training_and_a_new_group_heals(ray_pods: LocalCluster) -> None:
    """(b) Kill one rank of a group: the survivor never stops or reloads; the group restarts and heals."""
    cfg = tiny_config(steps=30, globalBatchSize=8, data={"syntheticTokens": 1024, "numShards": 6})
    driver = Driver(cfg, fast_options())
    state: dict[str, object] = {}

    def hook(d: Driver, step: int) -> None:
        ready = sorted(g.group_id for g in d.groups.values() if g.ready)
        together = len(d.committed) >= 2 and all(len(a) == 2 for a in d.committed[-2:])
        if "victim" not in state and together:
            victim = d.groups[ready[1]]
            state.update(victim=victim.group_id, survivor=ready[0], killed_at=step, node=victim.node_id)
            ray.kill(victim.actors[1], no_restart=True)  # one rank dies: its whole group is restarted
        if "victim" in state and step >= cfg.steps - 3:
            wait_for_replacement(d, state["node"], state["victim"], timeout=120)

    try:
        result = driver.run(hook=hook)
        fingerprints = driver.fingerprints()
        final_groups = sorted(driver.groups)
    finally:
        driver.shutdown()
    assert result.step == cfg.steps
    kinds = [e["kind"] for e in result.events]
    assert "restored" not in kinds and "restart_from_scratch" not in kinds, "\n".join(map(str, result.events))
    survivor = str(state["survivor"])
    # Once in, the survivor trained in every committed step: before, during and after the loss.
    first = next(i for i, a in enumerate(result.committed) if survivor in a)
    assert all(survivor in a for a in result.committed[first:])
    lost = [e for e in result.events if e["kind"] == "group_lost"]
    assert [e["group"] for e in lost] == [state["victim"]]
    newcomers = [g for g in final_groups if g not in (survivor, state["victim"])]
    assert len(newcomers) == 1, "\n".join(map(str, result.events))
    newcomer = newcomers[0]
    healed = [e["group"] for e in result.events if e["kind"] == "group_healed" and e["step"] > state["killed_at"]]
    assert healed == [newcomer]
    # While the newcomer started, the survivor committed steps alone.
    alone = [a for a in result.committed if set(a) == {survivor}]
    assert alone
    assert newcomer in result.committed[-1]
    assert_bit_identical(fingerprints[survivor], fingerprints[newcomer])
    # Ledger audit: every sample of each finished epoch trained exactly once.
    counts = count_samples(result.committed)
    finished = [e for e in counts if result.ledger.audit(e).trained == result.ledger.num_samples]
    assert finished
    for epoch in finished:
        assert result.ledger.audit(epoch).exact
        assert sorted(counts[epoch].values()) == [1] * result.ledger.num_samples


def test_losing_every_group_resumes_from_the_latest_checkpoint(ray_pods: LocalCluster, tmp_path: Path) -> None:
    """(d) Kill every rank of every group: new groups load the newest durable checkpoint, not step 0."""
    cfg = tiny_config(steps=14, globalBatchSize=8, data={"syntheticTokens": 1024, "numShards": 5})
    driver = Driver(cfg, fast_options(checkpoint_dir=str(tmp_path), checkpoint_interval=4, checkpoint_keep=2))
    state: dict[str, int] = {}

    def hook(d: Driver, step: int) -> None:
        latest = d.store.latest() if d.store else None
        if "killed_at" not in state and latest is not None and latest >= 8 and step >= 9:
            state.update(killed_at=step, latest=latest)
            kill_every_group(d)

    try:
        result = driver.run(hook=hook)
    finally:
        driver.shutdown()
    assert result.step == cfg.steps
    restored = [e for e in result.events if e["kind"] == "restored"]
    assert [e["checkpoint_step"] for e in restored] == [state["latest"]], "\n".join(map(str, result.events))
    assert state["latest"] > 0
    resumed = [e for e in result.events if e["kind"] == "group_started" and e["resume_step"] is not None]
    assert {e["resume_step"] for e in resumed} == {state["latest"]}
    # Committed steps after the restore continue from the checkpoint's step.
    steps = [m.step for m in result.metrics if m.committed]
    restart = steps.index(state["latest"] + 1, steps.index(state["killed_at"]))
    assert steps[restart:] == list(range(state["latest"] + 1, cfg.steps + 1))
    # Work after the checkpoint was redone once: the ledger (restored with the checkpoint) is exact.
    counts = count_samples(result.committed)
    assert len(result.committed) == cfg.steps
    assert result.ledger.audit(0).exact
    assert sorted(counts[0].values()) == [1] * result.ledger.num_samples
    second = result.ledger.audit(1)  # 14 steps x 8 samples: epoch 1 is three quarters done
    assert (second.trained, second.duplicated) == (cfg.steps * 8 - 64, 0)
    assert set(counts[1].values()) == {1} and len(counts[1]) == second.trained
    assert CheckpointStore(tmp_path, keep=2).steps() == [12, 14]  # and the trained state after the last step
