"""Codec building blocks without a process group: quantisation, top-k selection, PowerSGD shapes,
the dynamic policy's decisions, and how codecs act on them."""

from __future__ import annotations

import pytest
import torch

from elastrain_trainer.compression import (
    CastCodec,
    ExactCodec,
    Int8BlockCodec,
    Observation,
    PowerSGDCodec,
    TopKCodec,
    allgather_wire_bytes,
    allreduce_wire_bytes,
    build_codec,
    decide_strength,
    dequantize_blocks,
    matrix_shape,
    orthonormalize,
    quantize_blocks,
    select_topk,
)
from elastrain_trainer.config.compression import Codec as CodecName
from elastrain_trainer.config.compression import CompressionConfig, DynamicCompressionConfig


def test_int8_blocks_round_trip_within_half_a_step_per_block() -> None:
    flat = torch.randn(1000, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.01, 100, 1000)
    values, scales = quantize_blocks(flat, 64)
    assert values.dtype == torch.int8
    assert values.shape == (16, 64)  # padded to whole blocks
    assert scales.shape == (16,)
    restored = dequantize_blocks(values, scales, flat.numel())
    step = scales.repeat_interleave(64)[:1000]
    assert torch.all((restored - flat).abs() <= step / 2 + 1e-6)
    # Each block's largest entry is exactly representable: it maps to +-127.
    assert values.abs().amax(dim=1).tolist() == [127] * 16


def test_int8_all_zero_block_stays_zero() -> None:
    values, scales = quantize_blocks(torch.zeros(32), 16)
    assert torch.equal(dequantize_blocks(values, scales, 32), torch.zeros(32))


def test_topk_selects_the_largest_magnitudes() -> None:
    flat = torch.tensor([0.1, -5.0, 0.3, 4.0, -0.2, 0.0, 3.0, -0.05])
    values, indices = select_topk(flat, 0.3)  # ceil(0.3 * 8) = 3
    assert indices.dtype == torch.int32
    assert sorted(indices.tolist()) == [1, 3, 6]
    assert sorted(values.tolist()) == [-5.0, 3.0, 4.0]
    assert select_topk(flat, 1e-9)[1].tolist() == [1]  # at least one entry


@pytest.mark.parametrize(
    ("shape", "expected"), [((6, 4), (6, 4)), ((3, 4, 5), (3, 20)), ((100,), (10, 10)), ((10,), (3, 4))]
)
def test_powersgd_matrix_shape(shape: tuple[int, ...], expected: tuple[int, int]) -> None:
    assert matrix_shape(shape) == expected


def test_orthonormalize_gives_orthonormal_columns_spanning_the_input() -> None:
    matrix = torch.randn(20, 3, generator=torch.Generator().manual_seed(1))
    q = orthonormalize(matrix)
    torch.testing.assert_close(q.t() @ q, torch.eye(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(q @ (q.t() @ matrix), matrix, atol=1e-5, rtol=1e-5)


def test_wire_model() -> None:
    assert allreduce_wire_bytes(1000, 2) == 1000
    assert allreduce_wire_bytes(1000, 4) == 1500
    assert allgather_wire_bytes(100, 4) == 300


EXPECTED_CODECS: dict[CodecName, type] = {
    "none": ExactCodec,
    "bf16": CastCodec,
    "fp16": CastCodec,
    "int8_block": Int8BlockCodec,
    "topk": TopKCodec,
    "powersgd": PowerSGDCodec,
}


@pytest.mark.parametrize("name", list(EXPECTED_CODECS))
def test_build_codec_from_every_config_value(name: CodecName) -> None:
    cfg = CompressionConfig(
        codec=name, block_size=32, topk_ratio=0.2, powersgd_rank=3, error_feedback=False, start_step=7
    )
    codec = build_codec(cfg)
    assert type(codec) is EXPECTED_CODECS[name]
    assert codec.name == name
    assert codec.start_step == 7
    assert codec.dynamic is None
    assert codec.residual_count == 0
    settings = {
        "int8_block": ("block_size", 32),
        "topk": ("ratio", 0.2),
        "powersgd": ("rank", 3),
        "bf16": ("dtype", torch.bfloat16),
        "fp16": ("dtype", torch.float16),
    }
    if name in settings:
        attribute, value = settings[name]
        assert getattr(codec, attribute) == value
    if isinstance(codec, Int8BlockCodec | TopKCodec | PowerSGDCodec):
        assert codec.error_feedback is False


BANDWIDTH = DynamicCompressionConfig(enabled=True, signal="bandwidth", target_comm_fraction=0.2)
VARIANCE = DynamicCompressionConfig(enabled=True, signal="gradient_variance")


@pytest.mark.parametrize(
    ("cfg", "observation", "decision"),
    [
        (BANDWIDTH, Observation(comm_fraction=0.5, residual_ratio=None), "harder"),
        (BANDWIDTH, Observation(comm_fraction=0.15, residual_ratio=None), "keep"),
        (BANDWIDTH, Observation(comm_fraction=0.05, residual_ratio=0.99), "softer"),
        (VARIANCE, Observation(comm_fraction=0.9, residual_ratio=0.95), "softer"),
        (VARIANCE, Observation(comm_fraction=0.9, residual_ratio=0.5), "keep"),
        (VARIANCE, Observation(comm_fraction=0.0, residual_ratio=0.1), "harder"),
        (VARIANCE, Observation(comm_fraction=0.0, residual_ratio=None), "keep"),
    ],
)
def test_policy_decisions(cfg: DynamicCompressionConfig, observation: Observation, decision: str) -> None:
    assert decide_strength(cfg, observation) == decision


def _run_intervals(codec: TopKCodec | PowerSGDCodec | Int8BlockCodec, comm_fraction: float, intervals: int) -> None:
    for _ in range(intervals * 5):
        codec.measurements.comm_seconds += comm_fraction
        codec.end_step(step_seconds=1.0)


def test_topk_ratio_moves_within_its_bounds() -> None:
    dynamic = DynamicCompressionConfig(
        enabled=True, adjust_interval_steps=5, target_comm_fraction=0.2, min_topk_ratio=0.01, max_topk_ratio=0.08
    )
    codec = TopKCodec(0.04, dynamic=dynamic)
    _run_intervals(codec, comm_fraction=0.5, intervals=3)
    assert codec.ratio == 0.01
    assert [h[1:] for h in codec.measurements.history] == [
        ("harder", "topk=0.02"),
        ("harder", "topk=0.01"),
        ("harder", "topk=0.01"),
    ]
    _run_intervals(codec, comm_fraction=0.01, intervals=4)
    assert codec.ratio == 0.08
    assert [h[0] for h in codec.measurements.history] == [5, 10, 15, 20, 25, 30, 35]


def test_powersgd_rank_and_int8_switch_follow_the_policy() -> None:
    dynamic = DynamicCompressionConfig(enabled=True, adjust_interval_steps=5, min_rank=2, max_rank=8)
    powersgd = PowerSGDCodec(4, dynamic=dynamic)
    _run_intervals(powersgd, comm_fraction=0.01, intervals=3)
    assert powersgd.rank == 8
    _run_intervals(powersgd, comm_fraction=0.9, intervals=3)
    assert powersgd.rank == 2
    int8 = Int8BlockCodec(64, dynamic=dynamic)
    _run_intervals(int8, comm_fraction=0.01, intervals=1)
    assert int8.strength == "fp32"
    _run_intervals(int8, comm_fraction=0.9, intervals=1)
    assert int8.strength == "int8"


def test_without_dynamic_policy_strength_never_changes() -> None:
    codec = TopKCodec(0.04, dynamic=DynamicCompressionConfig(enabled=False, adjust_interval_steps=1))
    _run_intervals(codec, comm_fraction=0.9, intervals=4)
    assert codec.ratio == 0.04
    assert codec.measurements.history == []
    assert codec.step == 20
