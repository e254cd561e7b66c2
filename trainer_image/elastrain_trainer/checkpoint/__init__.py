"""Durable checkpoints: torch.distributed.checkpoint (DCP), resharding on load, atomic latest marker."""

from elastrain_trainer.checkpoint.dcp import TrainState, load_train_state, save_train_state, state_bytes
from elastrain_trainer.checkpoint.faults import SaveFailure
from elastrain_trainer.checkpoint.integrity import CheckpointCorruptError
from elastrain_trainer.checkpoint.store import (
    CheckpointChoice,
    CheckpointStore,
    DriverRecord,
    SkippedCheckpoint,
    atomic_write_text,
)

__all__ = [
    "CheckpointChoice",
    "CheckpointCorruptError",
    "CheckpointStore",
    "DriverRecord",
    "SaveFailure",
    "SkippedCheckpoint",
    "TrainState",
    "atomic_write_text",
    "load_train_state",
    "save_train_state",
    "state_bytes",
]
