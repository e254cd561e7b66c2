"""The cross-group gradient reduction: the seam where gradient compression plugs in.

A :data:`ReduceFactory` receives the group's torchft ``Manager`` and the trainer config and returns
the reduction FSDP2 calls from ``set_all_reduce_hook``: it takes the group's reduced gradient shard
and must leave the average over the participating groups in it, returning a work object to wait
on (or None once done). The default is torchft's plain fault-tolerant average; compression codecs
wrap ``manager.allreduce`` the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.parallel import ReduceHook

ReduceFactory = Callable[[Any, TrainerConfig], ReduceHook]


def plain_allreduce(manager: Any, cfg: TrainerConfig) -> ReduceHook:
    """Average over participating groups with ``manager.allreduce`` (never quantized: that needs Triton on GPU)."""

    def reduce(tensor: torch.Tensor) -> object:
        return manager.allreduce(tensor, should_quantize=False)

    return reduce
