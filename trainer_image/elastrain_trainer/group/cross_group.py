"""Wiring the cross-group reduction into a model: FSDP2's all-reduce hooks (fsdp) or whole gradients (ddp).

Every reduction is timed on a :class:`CommClock`, so a step can report its communication time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import FSDPModule

from elastrain_trainer.compression.fsdp_hook import managed_parameters, shard_segments
from elastrain_trainer.group.codec_reduce import ManagedCodecReduce
from elastrain_trainer.parallel import ReduceHook, set_cross_group_reduce


class CommClock:
    """Seconds spent in cross-group reductions since the last :meth:`restart`."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def restart(self) -> None:
        self.seconds = 0.0

    def timed(self, reduce: ReduceHook) -> Callable[[torch.Tensor], None]:
        """``reduce``, waited for and timed."""

        def timed(tensor: torch.Tensor) -> None:
            start = time.perf_counter()
            work = reduce(tensor)
            if work is not None:
                work.wait()  # type: ignore[attr-defined]
            self.seconds += time.perf_counter() - start

        return timed


def attach_cross_group_reduce(model: nn.Module, reduce: ReduceHook, clock: CommClock) -> None:
    """Average each FSDP unit's reduce-scattered gradient across groups with ``reduce``.

    A codec gets one hook per unit, with a stable key (its error-feedback residual) and the layout
    of the unit's parameter shards (PowerSGD compresses real matrices); any other reduction is the
    same hook on every unit.
    """
    if not isinstance(reduce, ManagedCodecReduce):
        set_cross_group_reduce(model, clock.timed(reduce))
        return
    units = [m for m in model.modules() if isinstance(m, FSDPModule) and managed_parameters(m)]
    for index, unit in enumerate(units):
        unit.set_all_reduce_hook(clock.timed(reduce.for_unit(("fsdp", index), shard_segments(unit))))


def reduce_replicated_grads(model: nn.Module, reduce: Callable[[torch.Tensor], None]) -> None:
    """ddp: average whole gradients in the group, then across groups through the same seam."""
    for param in model.parameters():
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        dist.all_reduce(param.grad, op=dist.ReduceOp.AVG)
        reduce(param.grad)
