"""One replica group: G ranks running FSDP2 over a 1-D mesh, a torchft Manager across groups."""

from elastrain_trainer.group.messages import GroupAddress, QuorumInfo, StepPlan, StepResult
from elastrain_trainer.group.reduce import ReduceFactory, plain_allreduce
from elastrain_trainer.group.worker import RankWorker

__all__ = [
    "GroupAddress",
    "QuorumInfo",
    "RankWorker",
    "ReduceFactory",
    "StepPlan",
    "StepResult",
    "plain_allreduce",
]
