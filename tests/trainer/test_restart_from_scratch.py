"""A run whose every checkpoint is unreadable starts over and checkpoints again from the first interval.

Two one-rank groups train with a checkpoint every 4 steps. Once the checkpoint of step 8 is marked,
every checkpoint on disk is truncated and every group is killed: the driver skips them all (with
their reasons), restarts from scratch, and must save step 4 of the new run again rather than wait
until it passes the old run's last checkpoint step.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.trainer.helpers import DATA_FILE, count_samples, fast_options, kill_every_group, tiny_config, truncate_half

from elastrain_trainer.checkpoint import CheckpointStore
from elastrain_trainer.driver import Driver
from elastrain_trainer.localmode import LocalCluster


def test_a_restart_from_scratch_checkpoints_again_from_the_first_interval(
    two_pods: LocalCluster, tmp_path: Path
) -> None:
    cfg = tiny_config(steps=14, globalBatchSize=8, data={"syntheticTokens": 1024, "numShards": 5})
    # Slow steps give an asynchronous save the 3 steps before the next one (1.5 s) to finish: it is then
    # marked, and reported as a checkpoint event, while training goes on (not in the next save's start).
    options = fast_options(
        checkpoint_dir=str(tmp_path), checkpoint_interval=4, checkpoint_keep=3, start_groups=2, step_delay=0.5
    )
    driver = Driver(cfg, options)
    state: dict[str, int] = {}
    damaged: list[int] = []

    def hook(d: Driver, step: int) -> None:
        assert d.store is not None
        # Before step 12's train phase no newer save has started: the checkpoints on disk are all marked.
        if "killed_at" not in state and d.store.latest() == 8 and 9 <= step <= 12:
            state["killed_at"] = step
            damaged.extend(d.store.steps())
            for saved in damaged:
                truncate_half(d.store.step_dir(saved) / DATA_FILE)
            kill_every_group(d)

    try:
        result = driver.run(hook=hook)
    finally:
        driver.shutdown()
    story = "\n".join(map(str, result.events))
    assert "killed_at" in state, f"the checkpoint of step 8 was never marked before step 12\n{story}"
    assert damaged == [4, 8], story
    assert result.step == cfg.steps
    kinds = [e["kind"] for e in result.events]
    restart = kinds.index("restart_from_scratch")
    assert result.events[restart]["lost_step"] == state["killed_at"], story
    assert "restored" not in kinds, story
    skipped = [e for e in result.events[:restart] if e["kind"] == "checkpoint_skipped"]
    assert [e["checkpoint_step"] for e in skipped] == [8, 4], story
    assert all(e["reason"].startswith(f"file {DATA_FILE} has") for e in skipped), story
    started = [e for e in result.events[restart:] if e["kind"] == "group_started"]
    assert len(started) >= 1 and all(e["resume_step"] is None for e in started), story
    # The new run saved step 4 again (before the fix, nothing until it passed the old step 8).
    saved_after = [e["checkpoint_step"] for e in result.events[restart:] if e["kind"] == "checkpoint"]
    assert saved_after[:1] == [4], story
    # Training started over at step 0 and ran every step once; the ledger covers the new run only.
    steps = [m.step for m in result.metrics if m.committed]
    again = steps.index(1, steps.index(state["killed_at"]))
    assert steps[again:] == list(range(1, cfg.steps + 1)), steps
    assert len(result.committed) == cfg.steps
    assert result.ledger.audit(0).exact
    assert sorted(count_samples(result.committed)[0].values()) == [1] * result.ledger.num_samples
    assert result.ledger.audit(1).duplicated == 0
    # The damaged checkpoints were written again, whole, and the trained state after the last step
    # was saved (keep 3: 4 was pruned); the latest is readable.
    store = CheckpointStore(tmp_path)
    assert store.steps() == [8, 12, 14]
    final = store.find_newest()
    assert final.skipped == () and final.record is not None and final.record.step == 14
    assert store.read_record(8).step == 8


@pytest.mark.parametrize("async_save", [False, True])
def test_every_checkpoint_marked_latest_is_reported_to_the_driver(
    two_pods: LocalCluster, tmp_path: Path, async_save: bool
) -> None:
    """Every save reaches the driver's events (and so the progress report's lastCheckpointStep),
    synchronous or not, and the trained state after the last step is saved too (step 8)."""
    cfg = tiny_config(steps=8, globalBatchSize=8)
    options = fast_options(
        start_groups=2, checkpoint_dir=str(tmp_path), checkpoint_interval=2, async_checkpoint=async_save
    )
    driver = Driver(cfg, options)
    try:
        result = driver.run()
    finally:
        driver.shutdown()
    reported = sorted({e["checkpoint_step"] for e in result.events if e["kind"] == "checkpoint"})
    marked = CheckpointStore(tmp_path).latest()
    assert marked == 8 and reported[-1] == marked, (reported, marked)
    assert reported == [2, 4, 6, 8], reported
