"""The cross-group gradient reduction: the seam where gradient compression plugs in.

A :data:`ReduceFactory` receives the group's torchft ``Manager`` and the trainer config and returns
the reduction FSDP2 calls from ``set_all_reduce_hook``: it takes the group's reduced gradient shard
and must leave the average over the participating groups in it, returning a work object to wait
on (or None once done). :func:`select_reduce` picks one from ``compression.codec``: torchft's plain
fault-tolerant average for ``none``, otherwise the codec on torchft's process group
(:class:`~elastrain_trainer.group.codec_reduce.ManagedCodecReduce`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from elastrain_trainer.compression import build_codec
from elastrain_trainer.config import DynamicCompressionConfig, TrainerConfig
from elastrain_trainer.group.codec_reduce import ManagedCodecReduce
from elastrain_trainer.parallel import ReduceHook

ReduceFactory = Callable[[Any, TrainerConfig], ReduceHook]


def plain_allreduce(manager: Any, cfg: TrainerConfig) -> ReduceHook:
    """Average over participating groups with ``manager.allreduce`` (never quantized: that needs Triton on GPU)."""

    def reduce(tensor: torch.Tensor) -> object:
        return manager.allreduce(tensor, should_quantize=False)

    return reduce


def compressed_allreduce(manager: Any, cfg: TrainerConfig) -> ManagedCodecReduce:
    """Average over participating groups with the codec ``cfg.compression`` names, on torchft's process group.

    The codec's own dynamic policy stays off: groups deciding alone would pick different strengths
    and could not exchange payloads. The driver decides instead and sends every group the step's
    strength in its plan (:class:`~elastrain_trainer.compression.StrengthController`).
    """
    fixed = cfg.compression.model_copy(update={"dynamic": DynamicCompressionConfig()})
    return ManagedCodecReduce(manager, build_codec(fixed))


def select_reduce(cfg: TrainerConfig) -> ReduceFactory:
    """The reduction ``cfg.compression`` asks for: :func:`plain_allreduce` when the codec is ``none``."""
    return plain_allreduce if cfg.compression.codec == "none" else compressed_allreduce
