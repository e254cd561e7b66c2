"""Durable checkpoints written by one rank: start a (possibly asynchronous) save, mark it latest when done.

A save writes this rank's shards (and, on rank 0, the driver's record); it becomes the "latest"
checkpoint only once every rank of the group has finished writing, agreed over the group.
With fp16 loss scaling rank 0 also writes the scaler's state (``grad_scaler.json``; the same on
every rank and every group) into the step's directory, so a resumed job continues with its scale.
"""

from __future__ import annotations

import json
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

from elastrain_trainer.checkpoint import (
    CheckpointStore,
    DriverRecord,
    TrainState,
    atomic_write_text,
    save_train_state,
)
from elastrain_trainer.group.messages import StepPlan

#: The loss scaler's state in a checkpoint's directory (listed in its manifest like every file).
GRAD_SCALER_FILE = "grad_scaler.json"


def write_scaler_state(directory: Path, scaler: ShardedGradScaler) -> None:
    """Write ``scaler``'s state (scale, growth tracker, factors) into ``directory`` atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / GRAD_SCALER_FILE, json.dumps(scaler.state_dict(), sort_keys=True))


def load_scaler_state(directory: Path, scaler: ShardedGradScaler) -> bool:
    """Load the scaler state saved in ``directory`` into ``scaler``; False when the checkpoint has none
    (saved without fp16 loss scaling): the scaler then starts from its configured initial scale."""
    path = directory / GRAD_SCALER_FILE
    if not path.is_file():
        return False
    scaler.load_state_dict(json.loads(path.read_text()))
    return True


class CheckpointWriter:
    """Saves of one rank into ``store``; at most one asynchronous save is in flight."""

    def __init__(
        self,
        store: CheckpointStore | None,
        *,
        rank: int,
        async_save: bool,
        train_state: TrainState,
        manager: Any,
        process_group: dist.ProcessGroup,
        scaler: ShardedGradScaler | None = None,
    ) -> None:
        self.store = store
        self.rank = rank
        self.async_save = async_save
        self.train_state = train_state
        self.manager = manager
        self.process_group = process_group
        self.scaler = scaler
        self._pending: tuple[int, Future[Any]] | None = None

    def start(self, plan: StepPlan) -> int | None:
        """Save the state at the manager's current step (after finishing any earlier save).

        Returns the step of a save marked latest on the way: the earlier asynchronous one this waited
        for, or this one when saving synchronously; None when none was.
        """
        assert self.store is not None, "checkpointing needs a checkpoint directory"
        earlier = self.finish(block=True)
        step = int(self.manager.current_step())
        if self.rank == 0 and plan.ledger_state is not None:
            self.store.write_record(
                DriverRecord(
                    step=step,
                    ledger=dict(plan.ledger_state),
                    batches_committed=int(self.manager.batches_committed()),
                    compression_strength=plan.compression_strength,
                )
            )
        if self.rank == 0 and self.scaler is not None:
            write_scaler_state(self.store.step_dir(step), self.scaler)
        future = save_train_state(
            self.train_state,
            self.store.step_dir(step),
            step=step,
            manager_state=self.manager.state_dict(),
            process_group=self.process_group,
            use_async=self.async_save,
        )
        if future is None:
            return self._mark(step)
        self._pending = (step, future)
        return earlier

    def finish(self, *, block: bool) -> int | None:
        """Mark a finished asynchronous save as latest; returns its step once it is marked."""
        if self._pending is None:
            return None
        step, future = self._pending
        if not block:
            # All ranks must agree before the barrier in _mark: the minimum of "my part is written".
            done = torch.tensor([1 if future.done() else 0])
            dist.all_reduce(done, op=dist.ReduceOp.MIN)
            if not int(done.item()):
                return None
        future.result()
        self._pending = None
        return self._mark(step)

    def _mark(self, step: int) -> int:
        # Every rank's part is written when its own future is done; rank 0 also wrote the metadata.
        dist.barrier()
        if self.rank == 0 and self.store is not None:
            self.store.mark_latest(step)
        return step
