"""The driver's compression strength controller: scripted measurements in, one strength per step out.

Pure: no process group, no clock. Also the strength stepping it shares with the codecs, and the
per-step metrics that carry the strength and the bytes sent (older metric files still load).
"""

from __future__ import annotations

from typing import Any

import pytest

from elastrain_trainer.compression import (
    Adjustment,
    StepSample,
    Strength,
    StrengthController,
    initial_strength,
    next_strength,
)
from elastrain_trainer.config.compression import CompressionConfig, DynamicCompressionConfig
from elastrain_trainer.metrics import StepMetrics

SLOW = StepSample(comm_fraction=0.9)  # communication dominates: compress harder (bandwidth signal)
FAST = StepSample(comm_fraction=0.01)  # communication is cheap: give accuracy back
ON_TARGET = StepSample(comm_fraction=0.15)  # between LOW_WATER * target and the target: keep


def _config(codec: str = "topk", **dynamic: Any) -> CompressionConfig:
    settings: dict[str, Any] = {"enabled": True, "adjustIntervalSteps": 3, "targetCommFraction": 0.2, **dynamic}
    return CompressionConfig.model_validate({"codec": codec, "topkRatio": 0.04, "powersgdRank": 4, "dynamic": settings})


def _controller(cfg: CompressionConfig) -> StrengthController:
    controller = StrengthController.from_config(cfg)
    assert controller is not None
    return controller


def _feed(controller: StrengthController, samples: list[StepSample], first_step: int = 0) -> list[Strength]:
    """Observe one sample per committed step; the strength the next step's plan would carry, per step."""
    strengths = []
    for offset, sample in enumerate(samples):
        controller.observe(first_step + offset, sample)
        strengths.append(controller.strength)
    return strengths


def test_topk_ratio_halves_and_doubles_within_its_bounds_once_per_interval() -> None:
    controller = _controller(_config(minTopkRatio=0.01, maxTopkRatio=0.08))
    assert controller.strength == 0.04
    # Three intervals of slow steps: 0.02, then 0.01, then held at the minimum.
    assert _feed(controller, [SLOW] * 9) == [0.04, 0.04, 0.02, 0.02, 0.02, 0.01, 0.01, 0.01, 0.01]
    # Fast steps: doubled at the end of each interval, held at the maximum.
    assert _feed(controller, [FAST] * 12, first_step=9)[2::3] == [0.02, 0.04, 0.08, 0.08]
    assert [(a.step, a.decision) for a in controller.history[:3]] == [(2, "harder"), (5, "harder"), (8, "harder")]
    assert controller.history[-1] == Adjustment(step=20, decision="softer", strength=0.08)


def test_an_interval_averages_its_steps_and_then_starts_over() -> None:
    controller = _controller(_config())
    # Mean comm fraction (0.9 + 0.01 + 0.01) / 3 = 0.31 > target 0.2: harder, though two steps were fast.
    assert _feed(controller, [SLOW, FAST, FAST])[-1] == 0.02
    # The next interval does not remember the slow step: on target, keep.
    assert _feed(controller, [ON_TARGET] * 3, first_step=3) == [0.02] * 3
    assert [a.decision for a in controller.history] == ["harder", "keep"]


def test_steps_before_start_step_are_not_observed() -> None:
    cfg = _config().model_copy(update={"start_step": 5})
    controller = _controller(cfg)
    assert _feed(controller, [SLOW] * 5) == [0.04] * 5  # sent uncompressed: says nothing about the strength
    assert controller.history == []
    assert _feed(controller, [SLOW] * 3, first_step=5)[-1] == 0.02


@pytest.mark.parametrize(
    ("codec", "samples", "expected"),
    [
        ("powersgd", [FAST] * 6, [8, 8]),  # doubled to maxRank 8, then held
        ("powersgd", [SLOW] * 9, [2, 1, 1]),  # halved, then held at minRank 1
        ("int8_block", [FAST] * 3 + [SLOW] * 3, [False, True]),  # int8 off, then on again
    ],
)
def test_powersgd_rank_and_int8_switch(codec: str, samples: list[StepSample], expected: list[Strength]) -> None:
    controller = _controller(_config(codec, minRank=1, maxRank=8))
    assert _feed(controller, samples)[2::3] == expected


def test_gradient_variance_follows_the_groups_compression_error() -> None:
    controller = _controller(_config(signal="gradient_variance"))
    # ||residual|| / ||signal|| = sqrt(3 * 0.95 / 3) > 0.9: too much dropped, compress softer.
    lossy = StepSample(comm_fraction=0.9, residual_sq=0.95, signal_sq=1.0)
    assert _feed(controller, [lossy] * 3)[-1] == 0.08
    accurate = StepSample(comm_fraction=0.0, residual_sq=0.01, signal_sq=1.0)
    assert _feed(controller, [accurate] * 3, first_step=3)[-1] == 0.04
    # Nothing compressed (no residual reported): keep.
    assert _feed(controller, [StepSample(comm_fraction=0.0)] * 3, first_step=6)[-1] == 0.04


@pytest.mark.parametrize(
    "compression",
    [
        {"codec": "topk"},  # dynamic policy off
        {"codec": "bf16"},
        {"codec": "none"},
    ],
)
def test_no_controller_without_a_dynamic_policy_on_a_tunable_codec(compression: dict[str, Any]) -> None:
    assert StrengthController.from_config(CompressionConfig.model_validate(compression)) is None


@pytest.mark.parametrize(
    ("codec", "expected"), [("topk", 0.04), ("powersgd", 4), ("int8_block", True), ("bf16", None), ("none", None)]
)
def test_initial_strength_is_the_configured_one(codec: str, expected: Strength | None) -> None:
    cfg = CompressionConfig.model_validate({"codec": codec, "topkRatio": 0.04, "powersgdRank": 4})
    assert initial_strength(cfg) == expected


def test_next_strength_keeps_and_leaves_fixed_codecs_alone() -> None:
    dynamic = DynamicCompressionConfig(enabled=True, min_rank=2, max_rank=16)
    assert next_strength("powersgd", 5, "harder", dynamic) == 2
    assert next_strength("powersgd", 5, "keep", dynamic) == 5
    assert next_strength("bf16", 1, "harder", dynamic) == 1


def _metrics(**extra: Any) -> StepMetrics:
    return StepMetrics(
        step=4,
        committed=True,
        loss=2.0,
        tokens_per_second=100.0,
        step_seconds=0.5,
        compute_seconds=0.25,
        comm_seconds=0.125,
        groups=2,
        world_size=4,
        wall_time=3.0,
        **extra,
    )


def test_step_metrics_carry_bytes_and_strength_and_load_older_files() -> None:
    metrics = _metrics(compression_bytes_sent=12345, compression_strength=0.02)
    assert StepMetrics.from_dict(metrics.to_dict()) == metrics
    older = {k: v for k, v in metrics.to_dict().items() if not k.startswith("compression_")}
    rebuilt = StepMetrics.from_dict(older)
    assert (rebuilt.compression_bytes_sent, rebuilt.compression_strength) == (0, None)
    assert rebuilt == _metrics()
