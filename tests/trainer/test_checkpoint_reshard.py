"""Durable DCP checkpoints: save at 4 ranks, load at 2 and at 4 again, exactly; latest marker and fallback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed.checkpoint as dcp
from tests.trainer.dcp_ranks import CFG, MANAGER_STATE, STEP, spawn

from elastrain_trainer.checkpoint import CheckpointStore, DriverRecord
from elastrain_trainer.models import build_model


def _assert_equal(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_save_at_four_ranks_loads_exactly_at_two_and_at_four(tmp_path: Path) -> None:
    path, out = tmp_path / "step-5", tmp_path / "state"
    spawn(4, path, out, save=True)
    spawn(2, path, out, save=False)
    expected = torch.load(str(out) + ".expected", weights_only=False)
    for world in (4, 2):
        loaded = torch.load(str(out) + f".loaded{world}", weights_only=False)
        assert loaded.pop("meta") == {"step": STEP, "manager": MANAGER_STATE}
        _assert_equal(expected, loaded, f"world {world}")
    # The fresh models really differed: loading is what made them equal.
    assert not torch.equal(expected["model"]["embed.weight"], build_model(CFG.model, seed=CFG.seed + 2).embed.weight)


def _tiny_checkpoint(store: CheckpointStore, step: int) -> None:
    dcp.save({"w": torch.full((3,), float(step))}, checkpoint_id=str(store.step_dir(step)), no_dist=True)
    store.write_record(DriverRecord(step=step, ledger={"step": step}))
    store.mark_latest(step)


def test_latest_marker_keeps_the_last_k_and_falls_back_when_unreadable(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep=2)
    assert store.newest_readable() is None
    for step in (3, 6, 9):
        _tiny_checkpoint(store, step)
    assert store.steps() == [6, 9]
    assert store.latest() == 9
    record = store.newest_readable()
    assert record is not None and record.step == 9
    (store.step_dir(9) / ".metadata").write_bytes(b"garbage")
    fallback = store.newest_readable()
    assert fallback is not None and fallback.step == 6 and fallback.ledger == {"step": 6}
    # A save that never finished has a directory but no marker: the marker still names 9.
    store.step_dir(12).mkdir()
    assert store.latest() == 9


@pytest.mark.parametrize("keep", [1, 3])
def test_keep_is_respected(tmp_path: Path, keep: int) -> None:
    store = CheckpointStore(tmp_path, keep=keep)
    for step in range(1, 6):
        _tiny_checkpoint(store, step)
    assert store.steps() == list(range(6 - keep, 6))
