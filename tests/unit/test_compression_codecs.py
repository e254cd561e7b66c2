"""Codec building blocks without a process group: quantisation, top-k selection, PowerSGD shapes,
the dynamic policy's decisions, and how codecs act on them; and the codec in torchft's path
(:class:`ManagedCodecReduce`) against a fake Manager whose process group echoes this rank's payload."""

from __future__ import annotations

from typing import Any

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
    initial_strength,
    matrix_shape,
    orthonormalize,
    quantize_blocks,
    select_topk,
)
from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.config.compression import Codec as CodecName
from elastrain_trainer.config.compression import CompressionConfig, DynamicCompressionConfig
from elastrain_trainer.group import ManagedCodecReduce, compressed_allreduce, plain_allreduce, select_reduce


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


# --- the codec in torchft's path -----------------------------------------------------------------


class EchoGroup:
    """A torchft process group of ``size`` groups that all sent what this one sent (no processes)."""

    def __init__(self, size: int, *, failure: Exception | None = None) -> None:
        self._size = size
        self.failure = failure
        self.collectives = 0

    def size(self) -> int:
        return self._size

    def allgather(self, outputs: list[list[torch.Tensor]], inputs: list[torch.Tensor], opts: object) -> None:
        self.collectives += 1
        if self.failure is not None:
            raise self.failure
        for out in outputs[0]:
            out.copy_(inputs[0])

    def allreduce(self, tensors: list[torch.Tensor], opts: object) -> None:
        self.collectives += 1
        if self.failure is not None:
            raise self.failure
        tensors[0].mul_(self._size)


class DoneWork:
    def wait(self) -> bool:
        return True


class FakeManager:
    """The parts of torchft's Manager a cross-group reduction uses."""

    def __init__(self, *, participants: int = 2, members: int = 2, participating: bool = True) -> None:
        self._pg = EchoGroup(members)
        self._quorum_id = 1
        self.participants = participants
        self.participating = participating
        self.step = 0
        self.errors: list[Exception] = []
        self.allreduced: list[bool] = []

    def errored(self) -> Exception | None:
        return self.errors[0] if self.errors else None

    def wait_quorum(self) -> None:
        pass

    def num_participants(self) -> int:
        return self.participants

    def is_participating(self) -> bool:
        return self.participating

    def current_step(self) -> int:
        return self.step

    def report_error(self, error: Exception) -> None:
        self.errors.append(error)

    def allreduce(self, tensor: torch.Tensor, should_quantize: bool = False) -> DoneWork:
        self.allreduced.append(should_quantize)
        return DoneWork()


def _gradient() -> torch.Tensor:
    return torch.randn(8, 32, generator=torch.Generator().manual_seed(3))


def test_managed_bf16_is_the_bf16_mean_and_counts_its_bytes() -> None:
    manager = FakeManager()
    reduce = ManagedCodecReduce(manager, build_codec(CompressionConfig(codec="bf16")))
    tensor = _gradient()
    reduce(tensor)
    assert torch.equal(tensor, _gradient().to(torch.bfloat16).float())
    assert manager.allreduced == [] and manager.errors == []
    traffic = reduce.end_step(step_seconds=1.0)
    assert traffic["compression_bytes_uncompressed"] == allreduce_wire_bytes(8 * 32 * 4, 2)
    assert traffic["compression_bytes_sent"] == allgather_wire_bytes(8 * 32 * 2, 2)
    assert reduce.end_step(step_seconds=1.0)["compression_bytes_sent"] == 0  # per step, not a running total


def test_managed_codec_falls_back_to_torchfts_average_when_a_member_does_not_participate() -> None:
    manager = FakeManager(participants=1, members=2)
    reduce = ManagedCodecReduce(manager, build_codec(CompressionConfig(codec="topk", topk_ratio=0.1)))
    tensor = _gradient()
    reduce(tensor)
    assert manager.allreduced == [False]  # never torchft's quantized path
    assert manager._pg.collectives == 0 and reduce.codec.residual_count == 0
    assert reduce.end_step(step_seconds=1.0)["compression_fallbacks"] == 1


def test_an_error_in_the_collective_reaches_the_manager_and_skips_the_rest_of_the_step() -> None:
    manager = FakeManager()
    failure = RuntimeError("connection closed by peer")
    manager._pg.failure = failure
    reduce = ManagedCodecReduce(manager, build_codec(CompressionConfig(codec="int8_block", block_size=64)))
    tensor = _gradient()
    reduce(tensor)
    assert manager.errors == [failure]
    assert torch.count_nonzero(tensor) == 0
    untouched = _gradient()
    reduce(untouched)  # like manager.allreduce after an error: a no-op, no collective
    assert manager._pg.collectives == 1 and torch.equal(untouched, _gradient())


def test_a_quorum_change_drops_error_feedback_state() -> None:
    manager = FakeManager()
    cfg = CompressionConfig(codec="topk", topk_ratio=0.1)
    reduce = ManagedCodecReduce(manager, build_codec(cfg))
    for _ in range(2):
        reduce.for_unit("unit", None)(_gradient())
        reduce.end_step(step_seconds=1.0)
    manager._quorum_id = 2
    tensor = _gradient()
    reduce.for_unit("unit", None)(tensor)
    fresh = _gradient()
    build_codec(cfg).allreduce_mean(fresh, manager._pg, key="unit")  # type: ignore[arg-type]
    assert reduce.resets == 1
    assert torch.equal(tensor, fresh)


def test_a_non_participant_contributes_exact_zeros_even_with_a_residual() -> None:
    manager = FakeManager()
    reduce = ManagedCodecReduce(manager, build_codec(CompressionConfig(codec="topk", topk_ratio=0.1)))
    reduce.for_unit("unit", None)(_gradient())
    assert reduce.codec.residual_count == 1
    manager.participating = False
    tensor = _gradient()
    reduce.for_unit("unit", None)(tensor)
    assert torch.count_nonzero(tensor) == 0


def test_start_step_counts_the_managers_committed_steps() -> None:
    """A group that healed into step 7 compresses like its peers, though its codec saw no step yet."""
    manager = FakeManager()
    reduce = ManagedCodecReduce(manager, build_codec(CompressionConfig(codec="bf16", start_step=5)))
    manager.step = 4
    reduce(_gradient())
    exact = reduce.end_step(step_seconds=1.0)
    manager.step = 7
    reduce(_gradient())
    compressed = reduce.end_step(step_seconds=1.0)
    assert exact["compression_bytes_sent"] == exact["compression_bytes_uncompressed"]
    assert compressed["compression_bytes_sent"] == compressed["compression_bytes_uncompressed"] / 2


def _trainer_config(compression: dict[str, Any]) -> TrainerConfig:
    return TrainerConfig.model_validate({"compression": compression})


def test_the_config_selects_the_reduction() -> None:
    assert select_reduce(_trainer_config({})) is plain_allreduce
    assert select_reduce(_trainer_config({"codec": "int8_block"})) is compressed_allreduce
    dynamic = _trainer_config({"codec": "topk", "topkRatio": 0.05, "dynamic": {"enabled": True}})
    reduce = compressed_allreduce(FakeManager(), dynamic)
    # The codec's own policy stays off: the driver decides the strength for every group.
    assert isinstance(reduce.codec, TopKCodec) and reduce.codec.dynamic is None
    assert reduce.codec.ratio == 0.05


@pytest.mark.parametrize(
    ("cfg", "new_strength"),
    [
        (CompressionConfig(codec="topk", topk_ratio=0.1), 0.025),
        (CompressionConfig(codec="powersgd", powersgd_rank=4), 2),
        (CompressionConfig(codec="int8_block", block_size=64), False),
    ],
)
def test_a_strength_change_from_the_plan_drops_error_feedback_state(cfg: CompressionConfig, new_strength: Any) -> None:
    manager = FakeManager()
    reduce = ManagedCodecReduce(manager, build_codec(cfg))
    for _ in range(2):
        reduce.set_strength(initial_strength(cfg))  # the configured strength: nothing changes
        reduce.for_unit("unit", None)(_gradient())
        reduce.end_step(step_seconds=1.0)
    assert reduce.codec.residual_count == 1 and reduce.strength_resets == 0
    reduce.set_strength(new_strength)
    assert reduce.codec.residual_count == 0 and reduce.strength_resets == 1
    assert reduce.codec.strength_value == new_strength
    tensor = _gradient()
    reduce.for_unit("unit", None)(tensor)
    traffic = reduce.end_step(step_seconds=1.0)
    # The same as a fresh codec at the new strength: no residual, no PowerSGD warm start survived.
    fresh = build_codec(cfg)
    fresh.set_strength(new_strength)
    expected = _gradient()
    fresh.allreduce_mean(expected, manager._pg, key="unit")  # type: ignore[arg-type]
    assert torch.equal(tensor, expected)
    assert traffic["compression_strength_resets"] == 1
    assert traffic["compression_strength"] == float(new_strength)
    assert traffic["compression_bytes_sent"] == fresh.stats.bytes_sent
    reduce.set_strength(None)  # no dynamic policy: keep the codec's strength
    assert reduce.codec.strength_value == new_strength and reduce.strength_resets == 1


def test_the_groups_compression_error_is_reported_per_step() -> None:
    reduce = ManagedCodecReduce(FakeManager(), build_codec(CompressionConfig(codec="topk", topk_ratio=0.1)))
    reduce(_gradient())
    first = reduce.end_step(step_seconds=1.0)
    assert 0 < first["compression_residual_sq"] < first["compression_signal_sq"]
    assert reduce.end_step(step_seconds=1.0)["compression_signal_sq"] == 0  # per step, not a running total


def test_a_codec_without_a_strength_refuses_one() -> None:
    with pytest.raises(ValueError, match="codec bf16 has no strength to set"):
        build_codec(CompressionConfig(codec="bf16")).set_strength(0.5)
