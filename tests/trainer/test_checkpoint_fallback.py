"""A damaged latest checkpoint is detected, skipped with its reason, and the previous one is used.

The first tests save real DCP checkpoints of a tiny GPT in this process (no process group) and
damage one data file; the last one kills every group of a live run after its latest checkpoint
was truncated, and checks the run resumes from the checkpoint before it and says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tests.trainer.helpers import DATA_FILE, count_samples, fast_options, kill_every_group, tiny_config, truncate_half

from elastrain_trainer.checkpoint import (
    CheckpointChoice,
    CheckpointStore,
    DriverRecord,
    TrainState,
    load_train_state,
    save_train_state,
)
from elastrain_trainer.checkpoint.integrity import MANIFEST
from elastrain_trainer.driver import Driver
from elastrain_trainer.localmode import LocalCluster
from elastrain_trainer.models import build_model
from elastrain_trainer.optim import build_lr_scheduler, build_optimizer

CFG = tiny_config()
STORE_LOGGER = "elastrain_trainer.checkpoint.store"


def _train_state(seed: int) -> TrainState:
    model = build_model(CFG.model, seed=seed)
    optimizer = build_optimizer(model.parameters(), CFG.optimizer)
    return TrainState(model, optimizer, build_lr_scheduler(optimizer, CFG.lr_schedule, total_steps=CFG.steps))


def _save(store: CheckpointStore, step: int) -> None:
    """What a one-rank group does: driver record, DCP save, then mark latest (writes the manifest)."""
    store.write_record(DriverRecord(step=step, ledger={"step": step}))
    save_train_state(
        _train_state(seed=step),
        store.step_dir(step),
        step=step,
        manager_state={"step": step, "batches_committed": step},
        process_group=None,
        use_async=False,
    )
    store.mark_latest(step)


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    """Checkpoints of steps 4 and 8 (latest), each of a different model."""
    store = CheckpointStore(tmp_path, keep=3)
    for step in (4, 8):
        _save(store, step)
    return store


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one tensor byte changed: DCP would load it silently
    path.write_bytes(bytes(data))


def _delete(path: Path) -> None:
    path.unlink()


DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (truncate_half, f"file {DATA_FILE} has"),
    "corrupted": (_flip_byte, f"file {DATA_FILE} has CRC-32"),
    "deleted": (_delete, f"file {DATA_FILE} is missing"),
}


def test_a_whole_checkpoint_is_chosen_with_nothing_skipped(store: CheckpointStore) -> None:
    choice = store.find_newest()
    assert choice.record == DriverRecord(step=8, ledger={"step": 8})
    assert choice.skipped == ()
    assert (store.step_dir(8) / MANIFEST).is_file()


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one_and_says_why(
    store: CheckpointStore, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    spoil, expected_reason = DAMAGES[damage]
    spoil(store.step_dir(8) / DATA_FILE)
    with caplog.at_level(logging.WARNING, logger=STORE_LOGGER):
        choice = store.find_newest()
        assert store.newest_readable() == choice.record  # the same choice, warned about once
    assert choice.record is not None and choice.record.step == 4
    [skipped] = choice.skipped
    assert (skipped.step, skipped.path) == (8, store.step_dir(8))
    assert skipped.reason.startswith(expected_reason), skipped.reason
    [warning] = [r.getMessage() for r in caplog.records if r.name == STORE_LOGGER]
    assert str(store.step_dir(8)) in warning and skipped.reason in warning
    assert "falling back to the checkpoint of step 4" in warning
    # The fallback really loads: a fresh model gets step 4's parameters.
    state = _train_state(seed=99)
    loaded = load_train_state(state, store.step_dir(4), process_group=None)
    assert loaded["step"] == 4
    expected = build_model(CFG.model, seed=4).state_dict()
    for name, tensor in state.model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_when_every_checkpoint_is_damaged_the_warning_says_training_starts_over(
    store: CheckpointStore, caplog: pytest.LogCaptureFixture
) -> None:
    truncate_half(store.step_dir(8) / DATA_FILE)
    _flip_byte(store.step_dir(4) / ".metadata")
    with caplog.at_level(logging.WARNING, logger=STORE_LOGGER):
        choice = store.find_newest()
    assert choice.record is None
    assert [s.step for s in choice.skipped] == [8, 4]
    assert "file .metadata has CRC-32" in choice.skipped[1].reason
    warnings = [r.getMessage() for r in caplog.records if r.name == STORE_LOGGER]
    assert len(warnings) == 2 and all("training starts again from step 0" in w for w in warnings)


def test_a_checkpoint_without_a_manifest_is_still_read_by_its_metadata(store: CheckpointStore) -> None:
    """Checkpoints written before manifests existed stay loadable (only their DCP metadata is checked)."""
    (store.step_dir(8) / MANIFEST).unlink()
    assert store.find_newest() == CheckpointChoice(record=DriverRecord(step=8, ledger={"step": 8}))
    (store.step_dir(8) / ".metadata").write_bytes(b"garbage")
    choice = store.find_newest()
    assert choice.record is not None and choice.record.step == 4
    assert choice.skipped[0].reason.startswith("DCP metadata is unreadable")


def test_losing_every_group_after_the_latest_checkpoint_was_truncated_resumes_from_the_one_before(
    two_pods: LocalCluster, tmp_path: Path
) -> None:
    cfg = tiny_config(steps=14, globalBatchSize=8, data={"syntheticTokens": 1024, "numShards": 5})
    driver = Driver(
        cfg, fast_options(checkpoint_dir=str(tmp_path), checkpoint_interval=4, checkpoint_keep=3, start_groups=2)
    )
    state: dict[str, int] = {}

    def hook(d: Driver, step: int) -> None:
        assert d.store is not None
        latest = d.store.latest()
        if "killed_at" not in state and latest is not None and latest >= 8 and step >= 9:
            previous = max(s for s in d.store.steps() if s < latest)
            state.update(killed_at=step, damaged=latest, previous=previous)
            truncate_half(d.store.step_dir(latest) / DATA_FILE)
            kill_every_group(d)

    try:
        result = driver.run(hook=hook)
    finally:
        driver.shutdown()
    story = "\n".join(map(str, result.events))
    assert result.step == cfg.steps
    assert state["previous"] > 0 and state["damaged"] > state["previous"]
    skipped = [e for e in result.events if e["kind"] == "checkpoint_skipped"]
    assert [e["checkpoint_step"] for e in skipped] == [state["damaged"]], story
    assert skipped[0]["reason"].startswith(f"file {DATA_FILE} has"), skipped[0]["reason"]
    assert skipped[0]["path"] == str(CheckpointStore(tmp_path).step_dir(state["damaged"]))
    restored = [e for e in result.events if e["kind"] == "restored"]
    assert [e["checkpoint_step"] for e in restored] == [state["previous"]], story
    assert "restart_from_scratch" not in {e["kind"] for e in result.events}, story
    resumed = [e for e in result.events if e["kind"] == "group_started" and e["resume_step"] is not None]
    assert {e["resume_step"] for e in resumed} == {state["previous"]}, story
    # Training went on from the checkpoint before the damaged one, and redid the steps after it once.
    steps = [m.step for m in result.metrics if m.committed]
    restart = steps.index(state["previous"] + 1, steps.index(state["killed_at"]))
    assert steps[restart:] == list(range(state["previous"] + 1, cfg.steps + 1))
    assert len(result.committed) == cfg.steps
    assert result.ledger.audit(0).exact
    assert sorted(count_samples(result.committed)[0].values()) == [1] * result.ledger.num_samples
    assert result.ledger.audit(1).duplicated == 0
    # The damaged step was saved again, whole, when the run passed it a second time; the newest
    # checkpoint holds the trained state after the last step.
    final = CheckpointStore(tmp_path).find_newest()
    assert final.skipped == () and final.record is not None and final.record.step == cfg.steps
    assert CheckpointStore(tmp_path).read_record(state["damaged"]).step == state["damaged"]


def test_the_leftovers_of_saves_that_failed_on_a_full_disk_are_never_loaded_and_are_pruned(tmp_path: Path) -> None:
    """Exactly what issue 31's full disk left: ``latest`` at 10, ``step-000000015`` half written and
    ``step-000000020`` empty, each with a ``.driver.json.tmp``."""
    store = CheckpointStore(tmp_path, keep=2)
    for step in (5, 10):
        _save(store, step)
    half = store.step_dir(15)
    half.mkdir()
    truncate_source = store.step_dir(10) / DATA_FILE
    (half / DATA_FILE).write_bytes(truncate_source.read_bytes()[: truncate_source.stat().st_size // 2])
    (half / ".driver.json.tmp").write_text('{"step": 15, "led')
    empty = store.step_dir(20)
    empty.mkdir()
    (empty / ".driver.json.tmp").write_text("")
    assert store.steps() == [5, 10, 15, 20] and store.latest() == 10
    assert store.complete_steps() == [5, 10]
    choice = store.find_newest()
    assert choice.record == DriverRecord(step=10, ledger={"step": 10}) and choice.skipped == ()
    # Without a readable latest marker the newest checkpoint with a manifest is taken, never a leftover.
    (store.root / "latest").write_text("garbage")
    assert store.find_newest() == CheckpointChoice(record=DriverRecord(step=10, ledger={"step": 10}))
    (store.root / "latest").write_text("10")
    # The next complete checkpoint prunes the leftovers older than it and keeps the newest `keep` complete ones.
    _save(store, 25)
    assert store.steps() == [10, 25] and store.latest() == 25
    # A failed save's directory goes, and a failed re-save of the latest step removes only its *.tmp files.
    store.step_dir(30).mkdir()
    (store.step_dir(30) / DATA_FILE).write_bytes(b"partial")
    assert store.discard(30) and not store.step_dir(30).exists()
    (store.step_dir(25) / ".driver.json.tmp").write_text("x")
    assert store.discard(25) and store.read_record(25).step == 25
