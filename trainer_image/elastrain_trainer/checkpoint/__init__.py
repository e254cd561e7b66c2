"""Durable checkpoints: torch.distributed.checkpoint (DCP), resharding on load, atomic latest marker."""

from elastrain_trainer.checkpoint.dcp import TrainState, load_train_state, save_train_state
from elastrain_trainer.checkpoint.store import CheckpointStore, DriverRecord

__all__ = ["CheckpointStore", "DriverRecord", "TrainState", "load_train_state", "save_train_state"]
