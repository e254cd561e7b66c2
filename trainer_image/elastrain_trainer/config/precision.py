"""Numeric precision of parameters, compute and reductions, and loss scaling for fp16."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from elastrain_trainer.config.base import ConfigModel, Rule

Dtype = Literal["fp32", "bf16", "fp16"]
ReduceDtype = Literal["fp32", "bf16"]
LossScalingMode = Literal["dynamic", "static", "none"]


class LossScalingConfig(ConfigModel):
    """Loss scaling keeps small fp16 gradients from underflowing; read only when precision.dtype is fp16."""

    mode: LossScalingMode = "dynamic"
    """dynamic: grow the scale while steps are finite, back off on overflow; static: fixed staticScale; none."""
    init_scale: float = Field(65536.0, ge=1.0, le=16777216.0)
    """Initial scale (dynamic)."""
    growth_factor: float = Field(2.0, gt=1.0, le=16.0)
    """Scale multiplier after growthInterval finite steps (dynamic)."""
    backoff_factor: float = Field(0.5, gt=0.0, lt=1.0)
    """Scale multiplier after a step with inf/nan gradients, which is skipped (dynamic)."""
    growth_interval: int = Field(2000, ge=1, le=1000000)
    """Finite steps between scale increases (dynamic)."""
    static_scale: float = Field(1024.0, ge=1.0, le=16777216.0)
    """The fixed scale (static)."""


class PrecisionConfig(ConfigModel):
    """Mixed precision: parameters and compute in dtype, fp32 master weights and optimizer state."""

    dtype: Dtype = "fp32"
    """Dtype of parameters and activations in forward and backward: fp32, bf16 or fp16."""
    master_weights: bool = True
    """Keep an fp32 copy of the parameters and fp32 optimizer state, updated from the low-precision
    gradients (bf16 and fp16 only)."""
    reduce_dtype: ReduceDtype = "fp32"
    """Dtype of gradient reductions inside a pod (FSDP reduce-scatter); cross-pod traffic is set by compression."""
    loss_scaling: LossScalingConfig = LossScalingConfig()

    rules = (
        Rule(
            cel="self.dtype != 'fp16' || self.lossScaling.mode != 'none'",
            holds=lambda p: p.dtype != "fp16" or p.loss_scaling.mode != "none",
            field="lossScaling.mode",
            message="fp16 gradients underflow without loss scaling; set lossScaling.mode to dynamic or static, "
            "or use dtype: bf16",
        ),
    )
