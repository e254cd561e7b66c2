"""Gradient compression on the slow link: the cross-pod reduction inside torchft's path."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from elastrain_trainer.config.base import ConfigModel, Rule

Codec = Literal["none", "bf16", "fp16", "int8_block", "topk", "powersgd"]
DynamicSignal = Literal["bandwidth", "gradient_variance"]

#: Codecs with a strength the dynamic policy can turn (int8_block is switched on and off).
TUNABLE_CODECS: tuple[Codec, ...] = ("int8_block", "topk", "powersgd")


class DynamicCompressionConfig(ConfigModel):
    """Dynamic policy: compression strength follows measured bandwidth or gradient statistics."""

    enabled: bool = False
    """Adapt compression strength while training (codecs int8_block, topk and powersgd only)."""
    signal: DynamicSignal = "bandwidth"
    """bandwidth: compress harder when cross-pod communication exceeds targetCommFraction of the step;
    gradient_variance: compress less when the compression error grows relative to the gradient."""
    target_comm_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    """Fraction of step time spent in cross-pod communication that the policy aims for (bandwidth)."""
    adjust_interval_steps: int = Field(50, ge=1, le=1000000)
    """Steps between adjustments."""
    min_topk_ratio: float = Field(0.001, gt=0.0, le=1.0)
    """Smallest fraction of gradient entries sent (topk)."""
    max_topk_ratio: float = Field(0.1, gt=0.0, le=1.0)
    """Largest fraction of gradient entries sent (topk)."""
    min_rank: int = Field(1, ge=1, le=256)
    """Smallest low-rank approximation rank (powersgd)."""
    max_rank: int = Field(32, ge=1, le=256)
    """Largest low-rank approximation rank (powersgd)."""

    rules = (
        Rule(
            cel="self.minTopkRatio <= self.maxTopkRatio",
            holds=lambda d: d.min_topk_ratio <= d.max_topk_ratio,
            field="minTopkRatio",
            message="minTopkRatio must not exceed maxTopkRatio; lower minTopkRatio or raise maxTopkRatio",
            shows=("minTopkRatio", "maxTopkRatio"),
        ),
        Rule(
            cel="self.minRank <= self.maxRank",
            holds=lambda d: d.min_rank <= d.max_rank,
            field="minRank",
            message="minRank must not exceed maxRank; lower minRank or raise maxRank",
            shows=("minRank", "maxRank"),
        ),
    )


class CompressionConfig(ConfigModel):
    """Compression of the gradients averaged across pods. Off by default; exact when off."""

    codec: Codec = "none"
    """none; bf16 or fp16 (cast); int8_block (int8 with one fp32 scale per block); topk (send the
    largest topkRatio of entries); powersgd (rank-powersgdRank approximation)."""
    block_size: int = Field(256, ge=16, le=65536)
    """Entries per quantisation block (int8_block)."""
    topk_ratio: float = Field(0.01, gt=0.0, le=1.0)
    """Fraction of gradient entries sent each step (topk)."""
    powersgd_rank: int = Field(4, ge=1, le=256)
    """Rank of the low-rank approximation (powersgd)."""
    error_feedback: bool = True
    """Add what compression dropped to the next step's gradient (int8_block, topk, powersgd)."""
    start_step: int = Field(0, ge=0, le=1000000000)
    """Send uncompressed gradients before this step (lets early, large gradients settle)."""
    dynamic: DynamicCompressionConfig = DynamicCompressionConfig()

    rules = (
        Rule(
            cel="!self.dynamic.enabled || self.codec in ['int8_block', 'topk', 'powersgd']",
            holds=lambda c: not c.dynamic.enabled or c.codec in TUNABLE_CODECS,
            field="dynamic.enabled",
            message="dynamic compression needs a tunable codec; set codec to int8_block, topk or powersgd, "
            "or dynamic.enabled: false",
            shows=("codec",),
        ),
    )
