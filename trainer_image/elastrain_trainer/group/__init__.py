"""One replica group: G ranks running FSDP2 over a 1-D mesh, a torchft Manager across groups."""

from elastrain_trainer.group.codec_reduce import ManagedCodecReduce
from elastrain_trainer.group.manager import FaultTimeouts
from elastrain_trainer.group.messages import GroupAddress, QuorumInfo, SaveReport, StepPlan, StepResult
from elastrain_trainer.group.reduce import ReduceFactory, compressed_allreduce, plain_allreduce, select_reduce
from elastrain_trainer.group.worker import RankWorker

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
