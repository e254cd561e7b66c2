"""Gradient compression on the cross-pod link: codecs, the dynamic policy, and the FSDP2 hook.

``build_codec(cfg)`` returns a :class:`Codec`; ``codec.allreduce_mean(tensor, group, key=...)``
averages a tensor in place across pods; ``codec.end_step(step_seconds=...)`` closes a step;
``codec.reset()`` drops residuals after a resize. Inside a pod reductions stay exact. Across
replica groups the driver's :class:`StrengthController` sets one strength for every group.
"""

from elastrain_trainer.compression.cast import CastCodec
from elastrain_trainer.compression.codec import Codec, ExactCodec, exact_allreduce_mean
from elastrain_trainer.compression.controller import Adjustment, StepSample, StrengthController, initial_strength
from elastrain_trainer.compression.factory import build_codec
from elastrain_trainer.compression.fsdp_hook import attach_codec, build_all_reduce_hook, shard_segments
from elastrain_trainer.compression.int8_block import Int8BlockCodec, dequantize_blocks, quantize_blocks
from elastrain_trainer.compression.policy import Decision, Observation, Strength, decide_strength, next_strength
from elastrain_trainer.compression.powersgd import PowerSGDCodec, matrix_shape, orthonormalize
from elastrain_trainer.compression.stats import CommStats, allgather_wire_bytes, allreduce_wire_bytes
from elastrain_trainer.compression.topk import TopKCodec, select_topk

__all__ = [
    "Adjustment",
    "CastCodec",
    "Codec",
    "CommStats",
    "Decision",
    "ExactCodec",
    "Int8BlockCodec",
    "Observation",
    "PowerSGDCodec",
    "StepSample",
    "Strength",
    "StrengthController",
    "TopKCodec",
    "allgather_wire_bytes",
    "allreduce_wire_bytes",
    "attach_codec",
    "build_all_reduce_hook",
    "build_codec",
    "decide_strength",
    "dequantize_blocks",
    "exact_allreduce_mean",
    "initial_strength",
    "matrix_shape",
    "next_strength",
    "orthonormalize",
    "quantize_blocks",
    "select_topk",
    "shard_segments",
]
