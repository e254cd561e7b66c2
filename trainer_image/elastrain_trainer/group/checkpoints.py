"""Durable checkpoints written by one rank: start a (possibly asynchronous) save, mark it latest when done.

A save writes this rank's shards (and, on rank 0, the driver's record); it becomes the "latest"
checkpoint only once every rank of the group has finished writing, agreed over the group.

A save is insurance, not the job: one that fails for any reason (a full volume, a quota, a
read-only remount, a flaky file server) never fails the step nor loses the group. Every rank
learns of a failure at the same point (a one-integer all-reduce after each phase: prepare, write,
mark), so all abandon the save together; rank 0 removes its partial files, ``latest`` stays at the
last complete checkpoint, and the failure (:class:`~elastrain_trainer.checkpoint.faults.SaveFailure`,
its cause in words) goes to the driver with the step's result. Before anything is written rank 0
checks the room left (``statvfs``) against the save's size (the last complete checkpoint's, or the
group's state bytes) and makes room by the policy of :func:`~elastrain_trainer.checkpoint.faults.decide_room`.
With fp16 loss scaling rank 0 also writes the scaler's state (``grad_scaler.json``; the same on
every rank and every group) into the step's directory, so a resumed job continues with its scale.
"""

from __future__ import annotations

import contextlib
import json
import logging
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

from elastrain_trainer.checkpoint import (
    CheckpointStore,
    DriverRecord,
    SaveFailure,
    TrainState,
    atomic_write_text,
    save_train_state,
    state_bytes,
)
from elastrain_trainer.checkpoint.faults import (
    SAVE_OVERHEAD_BYTES,
    decide_room,
    describe_failure,
    free_bytes,
    location_of,
)
from elastrain_trainer.group.messages import StepPlan

log = logging.getLogger(__name__)
#: What a save may raise and still be contained (DCP's CheckpointException is a BaseException).
SAVE_ERRORS = (Exception, CheckpointException)

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
    """Saves of one rank into ``store``; at most one asynchronous save is in flight.

    Every method that saves or marks is called by every rank of the group at the same point (it
    runs collectives over the group). Failures are kept until :meth:`take_failures`.
    """

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
        check_space: bool = True,
    ) -> None:
        self.store = store
        self.rank = rank
        self.async_save = async_save
        self.train_state = train_state
        self.manager = manager
        self.process_group = process_group
        self.scaler = scaler
        self.check_space = check_space
        """Check the room left before writing (off: a test or drill makes the write itself fail)."""
        self._pending: tuple[int, Future[Any]] | None = None
        self._failures: list[SaveFailure] = []

    def take_failures(self) -> tuple[SaveFailure, ...]:
        """The saves abandoned since the last call (rank 0's say why; the other ranks' only that they did)."""
        failures, self._failures = tuple(self._failures), []
        return failures

    def start(self, plan: StepPlan) -> int | None:
        """Save the state at the manager's current step (after finishing any earlier save).

        Returns the step of a save marked latest on the way: the earlier asynchronous one this waited
        for, or this one when saving synchronously; None when none was. A save that fails is abandoned
        (see :meth:`take_failures`); it never raises.
        """
        assert self.store is not None, "checkpointing needs a checkpoint directory"
        earlier = self.finish(block=True)
        step = int(self.manager.current_step())
        if not self._prepare(step, plan):
            return earlier
        error: BaseException | None = None
        future: Future[Any] | None = None
        try:
            future = save_train_state(
                self.train_state,
                self.store.step_dir(step),
                step=step,
                manager_state=self.manager.state_dict(),
                process_group=self.process_group,
                use_async=self.async_save,
            )
        except SAVE_ERRORS as caught:
            error = caught
        # Agreed before an asynchronous save is left to run too: a rank whose save raised at once must
        # not leave the others waiting for it in a collective.
        if self._agree(error is not None):
            if future is not None:
                with contextlib.suppress(*SAVE_ERRORS):
                    future.result()  # let this rank's background writes end before its files are removed
            self._abandon(step, error=error)
            return earlier
        if future is not None:
            self._pending = (step, future)
            return earlier
        return self._mark(step)

    def finish(self, *, block: bool) -> int | None:
        """Mark a finished asynchronous save as latest; returns its step once it is marked (None if it failed)."""
        if self._pending is None:
            return None
        step, future = self._pending
        if not block:
            # All ranks must agree before the barrier in _mark: the minimum of "my part is written".
            done = torch.tensor([1 if future.done() else 0])
            dist.all_reduce(done, op=dist.ReduceOp.MIN)
            if not int(done.item()):
                return None
        self._pending = None
        error: BaseException | None = None
        try:
            future.result()
        except SAVE_ERRORS as caught:
            error = caught
        if self._agree(error is not None):
            self._abandon(step, error=error)
            return None
        return self._mark(step)

    def _agree(self, failed: bool) -> bool:
        """Whether any rank of the group failed (every rank calls this at the same point)."""
        flag = torch.tensor([1 if failed else 0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(int(flag.item()))

    def _prepare(self, step: int, plan: StepPlan) -> bool:
        """Check the room and write rank 0's files before the shards; False when the save is abandoned."""
        needed = torch.tensor([state_bytes(self.train_state)], dtype=torch.int64)
        dist.all_reduce(needed, op=dist.ReduceOp.SUM)
        failure = self._prepare_directory(step, plan, needed=int(needed.item())) if self.rank == 0 else None
        if self._agree(failure is not None):
            self._abandon(step, failure=failure)
            return False
        return True

    def _prepare_directory(self, step: int, plan: StepPlan, *, needed: int) -> SaveFailure | None:
        """Rank 0: make room if the policy allows, then write the driver's record and the scaler's state."""
        store = self.store
        assert store is not None
        location = location_of(store.root)
        try:
            if self.check_space:
                complete = [(s, store.checkpoint_bytes(s)) for s in store.complete_steps()]
                needed = max([needed + SAVE_OVERHEAD_BYTES, *(size for _, size in complete[-1:])])
                room = decide_room(free=free_bytes(store.root), needed=needed, complete=complete)
                if not room.fits:
                    return SaveFailure(
                        step=step,
                        cause=f"no space left on device at {location}",
                        detail=f"{room.detail}; skipped before writing",
                    )
                for old in room.delete:
                    log.warning("deleting the checkpoint of step %d to make room for step %d", old, step)
                    store.delete(old)
            if plan.ledger_state is not None:
                store.write_record(
                    DriverRecord(
                        step=step,
                        ledger=dict(plan.ledger_state),
                        batches_committed=int(self.manager.batches_committed()),
                        compression_strength=plan.compression_strength,
                    )
                )
            if self.scaler is not None:
                write_scaler_state(store.step_dir(step), self.scaler)
        except OSError as error:
            cause, detail = describe_failure(error, location=location, free=free_bytes(store.root))
            return SaveFailure(step=step, cause=cause, detail=detail)
        return None

    def _abandon(self, step: int, *, error: BaseException | None = None, failure: SaveFailure | None = None) -> None:
        """Every rank: give the save up; rank 0 removes its partial files and says why."""
        assert self.store is not None
        location = location_of(self.store.root)
        if failure is None:
            if error is not None:
                cause, detail = describe_failure(error, location=location, free=free_bytes(self.store.root))
                failure = SaveFailure(step=step, cause=cause, detail=detail)
            else:
                failure = SaveFailure(step=step, cause=f"another rank of the group failed to write at {location}")
        if self.rank == 0:
            failure = replace(failure, removed=self.store.discard(step))
            log.warning("%s", failure.describe(last_good=self.store.latest()))
        self._failures.append(failure)

    def _mark(self, step: int) -> int | None:
        # Every rank's part is written when its own future is done; rank 0 also wrote the metadata.
        dist.barrier()
        error: OSError | None = None
        if self.rank == 0 and self.store is not None:
            try:
                self.store.mark_latest(step)
            except OSError as caught:
                error = caught
        if self._agree(error is not None):
            self._abandon(step, error=error)
            return None
        return step
