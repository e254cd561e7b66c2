"""Storage faults never stop training: checkpoints on a real 4 MB tmpfs that fills up or turns read-only mid-run.

The machine runs the tests as root, so each test mounts a tmpfs of its own (``mount -t tmpfs -o
size=4m``) and fills it (a filler file) or remounts it read-only while the driver trains two replica
groups of two ranks with real DCP saves. The run must finish every step with the same two groups
(none lost or restarted), the ledger exact, ``latest`` at the last complete checkpoint, no partial
checkpoint left, and each failure recorded (event, run summary) with its cause in words; a new run
from the directory resumes from the last complete checkpoint. Mounting needs root (these machines
run the tests as root); without it the fixture fails rather than skips. Steps per second with and without the
fault are printed (``-s``) for the report, never asserted.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.smallvolume import mounted_tmpfs, top_up
from tests.trainer.helpers import count_samples, fast_options, tiny_config

from elastrain_trainer.checkpoint import CheckpointStore
from elastrain_trainer.checkpoint.integrity import MANIFEST
from elastrain_trainer.driver import Driver, RunResult
from elastrain_trainer.errors import SpecError
from elastrain_trainer.localmode import LocalCluster
from elastrain_trainer.pod.summary import build_summary

CFG = tiny_config(steps=16, globalBatchSize=8, data={"syntheticTokens": 2048, "numShards": 8})
INTERVAL = 2


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs of the test's own (room for a few checkpoints of the tiny model)."""
    with mounted_tmpfs(tmp_path / "ckpt") as mount:
        yield mount


def _run(driver: Driver, hook: Any) -> RunResult:
    try:
        return driver.run(hook=hook)
    finally:
        driver.shutdown()


def _steps_per_second(result: RunResult, first: int, last: int) -> float:
    """Committed steps per second between steps ``first`` and ``last`` (from the metrics' clocks)."""
    times = {m.step: m.wall_time for m in result.metrics if m.committed}
    return (last - first) / max(1e-9, times[last] - times[first])


def _assert_training_went_on(result: RunResult, volume: Path) -> None:
    story = "\n".join(map(str, result.events))
    assert result.step == CFG.steps, story
    started = [e["group"] for e in result.events if e["kind"] == "group_started"]
    assert len(started) == 2, story  # the same two groups throughout: none lost, none restarted
    assert "group_lost" not in {e["kind"] for e in result.events}, story
    assert len(result.committed) == CFG.steps
    assert result.ledger.audit(0).exact
    counts = count_samples(result.committed)
    assert all(n == 1 for epoch in counts.values() for n in epoch.values())
    # latest is the newest complete checkpoint, and no partial checkpoint is left.
    store = CheckpointStore(volume)
    assert store.latest() == max(store.complete_steps())
    choice = store.find_newest()
    assert choice.skipped == () and choice.record is not None and choice.record.step == store.latest()
    for step in store.steps():
        assert (store.step_dir(step) / MANIFEST).is_file(), f"partial checkpoint left: {store.step_dir(step)}"
        assert not list(store.step_dir(step).glob(".*.tmp")), f"unfinished files left in step {step}"
    assert not (volume / ".latest.tmp").exists()


def volume_driver(volume: Path, **options: Any) -> Driver:
    """Two groups checkpointing every ``INTERVAL`` steps to ``volume``, keeping 2."""
    return Driver(
        CFG,
        fast_options(
            checkpoint_dir=str(volume), checkpoint_interval=INTERVAL, checkpoint_keep=2, start_groups=2, **options
        ),
    )


def _failures(result: RunResult) -> list[dict[str, Any]]:
    return [e for e in result.events if e["kind"] == "checkpoint_failed"]


@pytest.mark.parametrize(
    ("space_check", "use_async"),
    [(True, True), (False, True), (False, False)],
    ids=["checked-before-writing", "fails-mid-write", "fails-mid-write-sync"],
)
def test_a_full_volume_skips_saves_and_training_goes_on_until_space_returns(
    ray_pods: LocalCluster, volume: Path, space_check: bool, use_async: bool
) -> None:
    """Checked: the save is skipped before writing. Unchecked: DCP's writes (in the background, or in the
    step with a synchronous save) run out of room and are removed."""
    driver = volume_driver(volume, checkpoint_space_check=space_check, async_checkpoint=use_async)
    state: dict[str, Any] = {}
    fillers: list[Path] = []

    def hook(d: Driver, step: int) -> None:
        assert d.store is not None
        latest = d.store.latest()
        if "full_at" not in state and latest is not None and latest >= 4 and step >= 5:
            state["full_at"] = step
        if "full_at" in state and "freed_at" not in state:
            if step < 11:
                top_up(volume, fillers, leave=60_000)
            else:
                for filler in fillers:
                    filler.unlink()  # space returns: the next scheduled save succeeds
                state["freed_at"] = step

    result = _run(driver, hook)
    _assert_training_went_on(result, volume)
    failures = _failures(result)
    story = "\n".join(map(str, result.events))
    failed_steps = [e["checkpoint_step"] for e in failures]
    assert failed_steps and set(failed_steps) <= set(range(state["full_at"] - INTERVAL, state["freed_at"] + 1)), story
    first = result.events.index(failures[0])
    good = max(e["checkpoint_step"] for e in result.events[:first] if e["kind"] == "checkpoint")
    for failure in failures:
        assert failure["cause"] == f"no space left on device at file://{volume}", failure
        assert failure["removed"] is True and failure["last_good"] == good
        assert f"the last complete checkpoint is step {good}" in failure["message"]
    if space_check:
        assert all(f["detail"].endswith("needed; skipped before writing") for f in failures), story
    # A save after the space returned succeeded, and latest moved on.
    saved = [e["checkpoint_step"] for e in result.events if e["kind"] == "checkpoint"]
    assert max(saved) > state["freed_at"] and CheckpointStore(volume).latest() == max(saved)
    summary = build_summary(
        job="t", pod="head", step=result.step, total_steps=CFG.steps, audits=[], committed=[], metrics=[],
        events=result.events,
    )  # fmt: skip
    assert [f["step"] for f in summary["checkpointFailures"]] == failed_steps
    print(
        f"\n[{'checked' if space_check else 'mid-write'}, {'async' if use_async else 'sync'}] steps/s: before the "
        f"fault {_steps_per_second(result, 1, state['full_at']):.2f}, during it "
        f"{_steps_per_second(result, state['full_at'], state['freed_at']):.2f}, after it "
        f"{_steps_per_second(result, state['freed_at'], CFG.steps):.2f}"
    )


def test_a_read_only_volume_keeps_the_last_checkpoint_and_a_new_run_resumes_from_it(
    ray_pods: LocalCluster, volume: Path
) -> None:
    # Synchronous saves: none is in flight when the volume turns read-only. (One in flight then cannot
    # have its partial files removed either; it says so, `removed: false`, and is pruned once writable.)
    driver = volume_driver(volume, async_checkpoint=False)
    state: dict[str, Any] = {}

    def hook(d: Driver, step: int) -> None:
        assert d.store is not None
        latest = d.store.latest()
        if "ro_at" not in state and latest is not None and latest >= 6:
            subprocess.run(["mount", "-o", "remount,ro", str(volume)], check=True)
            state.update(ro_at=step, good=latest)

    result = _run(driver, hook)
    _assert_training_went_on(result, volume)
    failures = _failures(result)
    story = "\n".join(map(str, result.events))
    # Every save after the remount failed (the final one too) and named the cause; latest stayed put.
    assert [e["checkpoint_step"] for e in failures][-1] == CFG.steps, story
    assert {e["cause"] for e in failures} == {f"read-only file system at file://{volume}"}, story
    good = state["good"]
    assert CheckpointStore(volume).latest() == good and all(e["last_good"] == good for e in failures), story
    assert driver.checkpoint_health.in_a_row == len(failures) and driver.checkpoint_health.last_good == good
    report = driver.checkpoint_health.report()
    assert report is not None and report.consecutive_failures == len(failures)
    print(f"\n[read-only] steps/s during the fault {_steps_per_second(result, state['ro_at'], CFG.steps):.2f}")

    # A new run from that directory (still read-only) resumes from the last complete checkpoint.
    resumed = Driver(
        tiny_config(steps=good + 2, globalBatchSize=8, data={"syntheticTokens": 2048, "numShards": 8}),
        fast_options(checkpoint_dir=str(volume), checkpoint_interval=INTERVAL, checkpoint_keep=2, start_groups=2),
    )
    again = _run(resumed, None)
    story = "\n".join(map(str, again.events))
    assert [e["checkpoint_step"] for e in again.events if e["kind"] == "restored"] == [good], story
    assert {e["resume_step"] for e in again.events if e["kind"] == "group_started"} == {good}, story
    assert again.step == good + 2 and [m.step for m in again.metrics if m.committed] == [good + 1, good + 2], story


def test_after_max_consecutive_failures_the_driver_stops_naming_the_cause(ray_pods: LocalCluster, volume: Path) -> None:
    """spec.checkpoint.maxConsecutiveFailures 2 on a volume read-only from the start (synchronous saves)."""
    subprocess.run(["mount", "-o", "remount,ro", str(volume)], check=True)
    driver = Driver(
        CFG,
        fast_options(
            checkpoint_dir=str(volume),
            checkpoint_interval=INTERVAL,
            checkpoint_max_failures=2,
            async_checkpoint=False,
            start_groups=2,
        ),
    )
    with pytest.raises(SpecError) as raised:
        _run(driver, None)
    assert str(raised.value).startswith(
        f"spec.checkpoint: 2 checkpoint saves in a row failed, the last at step 4: read-only file system at "
        f"file://{volume}"
    ), raised.value
    assert "the last complete checkpoint is none" in str(raised.value)
    kinds = [e["kind"] for e in driver.events]
    assert kinds.count("checkpoint_failed") == 2 and kinds[-1] == "checkpoints_given_up", kinds
    assert "group_lost" not in kinds
