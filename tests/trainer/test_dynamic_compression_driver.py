"""The dynamic compression policy through the real driver: it decides the strength for every group.

2 groups x 2 ranks on a local Ray cluster, top-k with error feedback, a policy told that any
communication is too much (targetCommFraction far below what a CPU step spends in gloo): every
adjustment interval the driver halves the top-k ratio for both groups, down to its minimum.
"""

from __future__ import annotations

from tests.trainer.helpers import assert_bit_identical, fast_options, tiny_config

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
