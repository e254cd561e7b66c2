"""One replica group: G ranks running FSDP2 over a 1-D mesh, a torchft Manager across groups.

The messages and the fault timeouts import without torch; the rank worker and the reductions load
torch when first named, so a process that only exchanges messages with a group (the driver's
control-path benchmark's ranks, :mod:`.null_worker`) stays small.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from elastrain_trainer.group.manager import FaultTimeouts
from elastrain_trainer.group.messages import GroupAddress, QuorumInfo, SaveReport, StepPlan, StepResult

if TYPE_CHECKING:
    from elastrain_trainer.group.codec_reduce import ManagedCodecReduce
    from elastrain_trainer.group.reduce import ReduceFactory, compressed_allreduce, plain_allreduce, select_reduce
    from elastrain_trainer.group.worker import RankWorker

#: Names that load torch, by the module that defines them.
_LAZY = {
    "ManagedCodecReduce": "elastrain_trainer.group.codec_reduce",
    "RankWorker": "elastrain_trainer.group.worker",
    "ReduceFactory": "elastrain_trainer.group.reduce",
    "compressed_allreduce": "elastrain_trainer.group.reduce",
    "plain_allreduce": "elastrain_trainer.group.reduce",
    "select_reduce": "elastrain_trainer.group.reduce",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FaultTimeouts",
    "GroupAddress",
    "ManagedCodecReduce",
    "QuorumInfo",
    "RankWorker",
    "ReduceFactory",
    "SaveReport",
    "StepPlan",
    "StepResult",
    "compressed_allreduce",
    "plain_allreduce",
    "select_reduce",
]
