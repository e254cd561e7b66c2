"""The dynamic compression policy through the real driver: it decides the strength for every group.

2 groups x 2 ranks on a local Ray cluster, top-k with error feedback, a policy told that any
communication is too much (targetCommFraction far below what a CPU step spends in gloo): every
adjustment interval the driver halves the top-k ratio for both groups, down to its minimum.
"""

from __future__ import annotations

from pathlib import Path

from tests.trainer.helpers import assert_bit_identical, fast_options, kill_every_group, tiny_config

from elastrain_trainer.checkpoint import CheckpointStore
from elastrain_trainer.driver import Driver
from elastrain_trainer.localmode import LocalCluster


def test_the_driver_tightens_compression_for_every_group_and_they_stay_identical(ray_pods: LocalCluster) -> None:
    compression = {
        "codec": "topk",
        "topkRatio": 0.2,
        "dynamic": {
            "enabled": True,
            "signal": "bandwidth",
            "targetCommFraction": 0.001,
            "adjustIntervalSteps": 2,
            "minTopkRatio": 0.05,
            "maxTopkRatio": 0.2,
        },
    }
    cfg = tiny_config(steps=8, globalBatchSize=8, compression=compression)
    driver = Driver(cfg, fast_options(start_groups=2))
    try:
        result = driver.run()
        fingerprints = driver.fingerprints()
    finally:
        driver.shutdown()
    assert result.step == cfg.steps
    committed = [m for m in result.metrics if m.committed]
    assert all(m.groups == 2 for m in committed), [m.groups for m in committed]

    # The driver tightened twice (0.2 -> 0.1 -> 0.05) and then held at the minimum.
    adjusted = [e for e in result.events if e["kind"] == "compression_adjusted"]
    changes = [(e["decision"], e["previous"], e["strength"]) for e in adjusted]
    assert changes == [("harder", 0.2, 0.1), ("harder", 0.1, 0.05)], adjusted
    strengths = [m.compression_strength for m in committed]
    assert strengths[0] == 0.2 and strengths[-1] == 0.05, strengths
    assert strengths == sorted(strengths, reverse=True), strengths

    # Fewer bytes crossed pods once the ratio was lower, and both groups applied the same updates.
    sent = [m.compression_bytes_sent for m in committed]
    assert sent[-1] < sent[0] / 3, sent
    first, second = fingerprints.values()
    assert_bit_identical(first, second)


def test_after_losing_every_group_the_run_resumes_at_the_checkpointed_strength(
    ray_pods: LocalCluster, tmp_path: Path
) -> None:
    """The strength the policy reached is saved with each checkpoint and restored with it, not reset."""
    compression = {
        "codec": "topk",
        "topkRatio": 0.4,
        "dynamic": {
            "enabled": True,
            "signal": "bandwidth",
            "targetCommFraction": 0.001,
            "adjustIntervalSteps": 2,
            "minTopkRatio": 0.0125,
            "maxTopkRatio": 0.4,
        },
    }
    cfg = tiny_config(steps=10, globalBatchSize=8, compression=compression)
    options = fast_options(start_groups=2, checkpoint_dir=str(tmp_path), checkpoint_interval=4, checkpoint_keep=3)
    driver = Driver(cfg, options)
    state: dict[str, int] = {}

    def hook(d: Driver, step: int) -> None:
        latest = d.store.latest() if d.store else None
        if "killed_at" not in state and latest is not None and latest >= 4 and step >= 5:
            state.update(killed_at=step, latest=latest)
            kill_every_group(d)

    try:
        result = driver.run(hook=hook)
    finally:
        driver.shutdown()
    assert result.step == cfg.steps
    saved = CheckpointStore(tmp_path).read_record(state["latest"]).compression_strength
    assert saved is not None and saved < 0.4, saved  # the policy had moved before the checkpoint
    kinds = [e["kind"] for e in result.events]
    restored_at = kinds.index("restored")
    assert result.events[restored_at]["checkpoint_step"] == state["latest"]
    # The first step trained after the restore used the saved strength, not the configured 0.4.
    after = [m for m in result.metrics if m.committed and m.wall_time > result.events[restored_at]["time"]]
    assert after and after[0].compression_strength == saved, [(m.step, m.compression_strength) for m in after]
