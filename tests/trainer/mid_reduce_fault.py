"""A reduction that kills its rank mid-step: imported by the rank actors (by module path) of a trainer test."""

from __future__ import annotations

import os
from typing import Any

import torch

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.group import plain_allreduce

FAULT_STEP = 2
VICTIM = "group1"  # the driver names its groups group1, group2, ... in start order


def dying_reduce(manager: Any, cfg: TrainerConfig) -> Any:
    """torchft's average; the victim's rank exits as its second all-reduce of FAULT_STEP starts."""
    inner = plain_allreduce(manager, cfg)
    started: dict[int, int] = {}

    def reduce(tensor: torch.Tensor) -> object:
        step = int(manager.current_step())
        started[step] = started.get(step, 0) + 1
        if manager._replica_id == VICTIM and step == FAULT_STEP and started[step] == 2:
            os._exit(1)  # the first bucket is averaged; the rest of backward's buckets never are
        return inner(tensor)

    return reduce
