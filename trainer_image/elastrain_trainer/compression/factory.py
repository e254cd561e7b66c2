"""Build the codec a :class:`CompressionConfig` names."""

from __future__ import annotations

import torch

from elastrain_trainer.compression.cast import CastCodec
from elastrain_trainer.compression.codec import Codec, ExactCodec
from elastrain_trainer.compression.int8_block import Int8BlockCodec
from elastrain_trainer.compression.powersgd import PowerSGDCodec
from elastrain_trainer.compression.topk import TopKCodec
from elastrain_trainer.config.compression import CompressionConfig


def build_codec(cfg: CompressionConfig) -> Codec:
    """Return a fresh codec (no residuals) for ``cfg``; ``codec: none`` is an exact fp32 all-reduce."""
    start, dynamic, feedback = cfg.start_step, cfg.dynamic, cfg.error_feedback
    match cfg.codec:
        case "none":
            return ExactCodec(start_step=start, dynamic=dynamic)
        case "bf16":
            return CastCodec(torch.bfloat16, start_step=start, dynamic=dynamic)
        case "fp16":
            return CastCodec(torch.float16, start_step=start, dynamic=dynamic)
        case "int8_block":
            return Int8BlockCodec(cfg.block_size, error_feedback=feedback, start_step=start, dynamic=dynamic)
        case "topk":
            return TopKCodec(cfg.topk_ratio, error_feedback=feedback, start_step=start, dynamic=dynamic)
        case "powersgd":
            return PowerSGDCodec(cfg.powersgd_rank, error_feedback=feedback, start_step=start, dynamic=dynamic)
