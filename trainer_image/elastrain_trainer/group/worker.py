"""One rank of a replica group. The driver runs G of these per worker pod as Ray actors.

Per step the driver calls :meth:`RankWorker.quorum` on every rank of every group (torchft forms the
quorum across groups; a joining group heals from a live peer here, synchronously, before its first
forward), then :meth:`RankWorker.train` with the group's samples. Inside a group FSDP2
reduce-scatters gradients; FSDP2's all-reduce hook then averages each shard across the groups of
the quorum through the pluggable reduction (:mod:`elastrain_trainer.group.reduce`). The optimizer
steps only when ``manager.should_commit()`` says every rank of this group and the quorum are healthy.

The class is plain Python (Ray wraps it with ``ray.remote``), so the same code also runs in a
process without Ray.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule
from torch.nn import functional as F  # noqa: N812

from elastrain_trainer.checkpoint import CheckpointStore, DriverRecord, TrainState, load_train_state, save_train_state
from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.data import build_samples
from elastrain_trainer.group.messages import GroupAddress, QuorumInfo, StepPlan, StepResult
from elastrain_trainer.group.reduce import ReduceFactory, plain_allreduce
from elastrain_trainer.group.state import LiveState
from elastrain_trainer.models import build_model
from elastrain_trainer.optim import build_lr_scheduler, build_optimizer
from elastrain_trainer.parallel import parallelize, set_cross_group_reduce


def quiet_torchft_logs() -> None:
    """torchft logs every quorum and commit at INFO; keep warnings only."""
    os.environ.setdefault("RUST_LOG", "warn")
    for name in ("torchft", "torchft_quorums", "torchft_commits", "torchft_errors"):
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass(frozen=True)
class FaultTimeouts:
    """torchft timeouts of a group (the config has no fields for them yet)."""

    collective_seconds: float = 30.0
    quorum_seconds: float = 120.0
    connect_seconds: float = 30.0


class RankWorker:
    """Rank ``rank`` of replica group ``address.group_id``."""

    def __init__(
        self,
        cfg_json: str,
        address: GroupAddress,
        rank: int,
        *,
        checkpoint_dir: str | None = None,
        checkpoint_keep: int = 3,
        async_checkpoint: bool = True,
        timeouts: FaultTimeouts = FaultTimeouts(),
        reduce_factory: ReduceFactory = plain_allreduce,
        advertise_host: str = "127.0.0.1",
    ) -> None:
        self.cfg = TrainerConfig.model_validate_json(cfg_json)
        self.address = address
        self.rank = rank
        self.world = address.world_size
        self.store = CheckpointStore(checkpoint_dir, keep=checkpoint_keep) if checkpoint_dir else None
        self.async_checkpoint = async_checkpoint
        self.timeouts = timeouts
        self.reduce_factory = reduce_factory
        self.advertise_host = advertise_host
        self.healed = False
        self.heal_seconds = 0.0
        self.comm_seconds = 0.0
        self._pending_save: tuple[int, Future[Any]] | None = None
        self.manager: Any = None

    # -- set-up -------------------------------------------------------------------------------

    @staticmethod
    def reserve_port() -> int:
        """A free TCP port on this node for rank 0's store (called on rank 0 before set-up)."""
        with socket.socket() as sock:
            sock.bind(("", 0))
            return int(sock.getsockname()[1])

    def setup(self, resume_step: int | None = None, store_port: int | None = None) -> int:
        """Join the group's process group, build the sharded model, start the torchft Manager.

        With ``resume_step`` load that durable checkpoint first (no live peer to heal from).
        ``store_port`` overrides the address's port (reserved on rank 0 just before). Returns
        this rank's step.
        """
        from torchft import Manager, ProcessGroupGloo

        if store_port is not None:
            self.address = dataclasses.replace(self.address, store_port=store_port)
        quiet_torchft_logs()

        torch.set_num_threads(1)
        timeout = timedelta(seconds=self.timeouts.collective_seconds)
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://{self.address.store_host}:{self.address.store_port}",
            rank=self.rank,
            world_size=self.world,
            timeout=timeout,
        )
        self.mesh = init_device_mesh("cpu", (self.world,))
        # Asynchronous checkpoint writes run collectives in a background thread: give them their own group.
        group = dist.new_group(backend="gloo")
        assert isinstance(group, dist.ProcessGroup)
        self.checkpoint_pg: dist.ProcessGroup = group
        model = parallelize(build_model(self.cfg.model, seed=self.cfg.seed), self.mesh, self.cfg)
        self.model = model
        self.optimizer = build_optimizer(model.parameters(), self.cfg.optimizer)
        self.scheduler = build_lr_scheduler(self.optimizer, self.cfg.lr_schedule, total_steps=self.cfg.steps)
        self.live = LiveState(model, self.optimizer, self.scheduler)
        self.samples = build_samples(self.cfg.data, self.cfg.model, seed=self.cfg.seed)
        restored: dict[str, Any] | None = None
        if resume_step is not None:
            assert self.store is not None, "resuming needs a checkpoint directory"
            restored = load_train_state(
                self._train_state(), self.store.step_dir(resume_step), process_group=self.checkpoint_pg
            )
        self.manager = Manager(
            pg=ProcessGroupGloo(timeout=timeout),
            load_state_dict=self._load_live,
            state_dict=self.live.live_state,
            min_replica_size=1,
            use_async_quorum=False,
            timeout=timeout,
            quorum_timeout=timedelta(seconds=self.timeouts.quorum_seconds),
            connect_timeout=timedelta(seconds=self.timeouts.connect_seconds),
            rank=self.rank,
            world_size=self.world,
            store_addr=self.address.store_host,
            store_port=self.address.store_port,
            lighthouse_addr=self.address.lighthouse,
            replica_id=self.address.group_id,
            hostname=self.advertise_host,
            init_sync=False,
        )
        if restored is not None:
            self.manager.load_state_dict(restored["manager"])
        if self.cfg.parallelism.strategy == "fsdp":
            set_cross_group_reduce(model, self._timed(self.reduce_factory(self.manager, self.cfg)))
        return int(self.manager.current_step())

    def _train_state(self) -> TrainState:
        return TrainState(model=self.model, optimizer=self.optimizer, scheduler=self.scheduler)

    def _timed(self, reduce: Any) -> Any:
        def timed(tensor: torch.Tensor) -> None:
            start = time.perf_counter()
            work = reduce(tensor)
            if work is not None:
                work.wait()
            self.comm_seconds += time.perf_counter() - start

        return timed

    def _load_live(self, state: dict[str, Any]) -> None:
        start = time.perf_counter()
        self.live.load_live_state(state)
        self.healed = True
        self.heal_seconds = time.perf_counter() - start

    # -- a step -------------------------------------------------------------------------------

    def quorum(self) -> QuorumInfo:
        """Form this step's quorum; a group behind the others heals from a live peer here."""
        self.healed = False
        start = time.perf_counter()
        self.manager.start_quorum()
        return QuorumInfo(
            group_id=self.address.group_id,
            rank=self.rank,
            quorum_id=int(self.manager._quorum_id),
            participants=int(self.manager.num_participants()),
            replica_rank=self.manager.participating_rank(),
            step=int(self.manager.current_step()),
            healed=self.healed,
            heal_seconds=time.perf_counter() - start if self.healed else 0.0,
        )

    def train(self, plan: StepPlan) -> StepResult:
        """Forward and backward on this rank's part of the group's samples; step if the quorum commits."""
        start = time.perf_counter()
        saved = self._finish_save(block=False)
        if plan.checkpoint:
            self._start_save(plan)
        compute_start = time.perf_counter()  # a save's blocking part is not compute: it would skew the balance
        if self.manager.num_participants() != plan.participants:
            # The driver weighted the gradients for another quorum: never commit this step.
            self.manager.report_error(
                RuntimeError(f"quorum has {self.manager.num_participants()} groups, plan {plan.participants}")
            )
        indices = np.array([i for p in plan.pieces for i in range(p.start, p.stop)], dtype=np.int64)
        mine = np.array_split(indices, self.world)[self.rank]
        group_samples = len(indices)
        tokens_per_sample = self.cfg.model.seq_len
        # Loss sum x scale: after FSDP's in-group mean and torchft's cross-group mean this is the
        # mean over all samples of the step (group weight = n_g * P / B, see elastrain_trainer.balance).
        scale = self.world * plan.weight / max(1, group_samples * tokens_per_sample)
        self.comm_seconds = 0.0
        loss_sum = self._forward_backward(mine, scale)
        if plan.delay_seconds:
            time.sleep(plan.delay_seconds)
        if self.cfg.parallelism.strategy == "ddp":
            self._reduce_replicated_grads()
        compute_done = commit_start = time.perf_counter()
        committed = bool(self.manager.should_commit())
        commit_seconds = time.perf_counter() - commit_start
        if committed:
            if self.cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        end = time.perf_counter()
        comm = self.comm_seconds + commit_seconds
        return StepResult(
            group_id=self.address.group_id,
            rank=self.rank,
            step=int(self.manager.current_step()),
            committed=committed,
            loss_sum=loss_sum,
            tokens=len(mine) * tokens_per_sample,
            samples=len(mine),
            compute_seconds=max(0.0, compute_done - compute_start - self.comm_seconds),
            comm_seconds=comm,
            step_seconds=end - start,
            participants=int(self.manager.num_participants()),
            checkpoint_saved=saved,
        )

    def _forward_backward(self, mine: np.ndarray, scale: float) -> float:
        micro = max(1, self.cfg.grad_accumulation_steps)
        chunks = np.array_split(mine, micro)
        total = 0.0
        self.model.train()
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            if isinstance(self.model, FSDPModule):
                self.model.set_requires_gradient_sync(last)
            # Every rank must run the same collectives: an empty chunk runs one sample with weight 0.
            weight = scale if len(chunk) else 0.0
            inputs, targets = self.samples.batch(chunk.tolist() if len(chunk) else [0])
            logits = self.model(inputs)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum")
            (loss * weight).backward()  # type: ignore[no-untyped-call]
            if len(chunk):
                total += float(loss.detach())
        return total

    @torch.no_grad()
    def evaluate(self, start: int, stop: int) -> tuple[float, int]:
        """Loss sum and token count of this rank's part of held-out samples ``[start, stop)``."""
        mine = np.array_split(np.arange(start, stop), self.world)[self.rank]
        self.model.eval()
        inputs, targets = self.samples.batch(mine.tolist() if len(mine) else [start])
        logits = self.model(inputs)  # every rank runs the same FSDP collectives, even with nothing to score
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum")
        self.model.train()
        return (float(loss), len(mine) * self.cfg.model.seq_len) if len(mine) else (0.0, 0)

    def _reduce_replicated_grads(self) -> None:
        """ddp: average whole gradients in the group, then across groups through the same seam."""
        reduce = self._timed(self.reduce_factory(self.manager, self.cfg))
        for param in self.model.parameters():
            if param.grad is None:
                param.grad = torch.zeros_like(param)
            dist.all_reduce(param.grad, op=dist.ReduceOp.AVG)
            reduce(param.grad)

    # -- checkpoints --------------------------------------------------------------------------

    def _start_save(self, plan: StepPlan) -> None:
        assert self.store is not None, "checkpointing needs a checkpoint directory"
        self._finish_save(block=True)
        step = int(self.manager.current_step())
        if self.rank == 0 and plan.ledger_state is not None:
            self.store.write_record(
                DriverRecord(
                    step=step,
                    ledger=dict(plan.ledger_state),
                    batches_committed=int(self.manager.batches_committed()),
                )
            )
        future = save_train_state(
            self._train_state(),
            self.store.step_dir(step),
            step=step,
            manager_state=self.manager.state_dict(),
            process_group=self.checkpoint_pg,
            use_async=self.async_checkpoint,
        )
        if future is None:
            self._mark(step)
        else:
            self._pending_save = (step, future)

    def _finish_save(self, *, block: bool) -> int | None:
        """Mark a finished asynchronous save as latest; returns its step once it is marked."""
        if self._pending_save is None:
            return None
        step, future = self._pending_save
        if not block:
            # All ranks must agree before the barrier in _mark: the minimum of "my part is written".
            done = torch.tensor([1 if future.done() else 0])
            dist.all_reduce(done, op=dist.ReduceOp.MIN)
            if not int(done.item()):
                return None
        future.result()
        self._pending_save = None
        return self._mark(step)

    def _mark(self, step: int) -> int:
        # Every rank's part is written when its own future is done; rank 0 also wrote the metadata.
        dist.barrier()
        if self.rank == 0 and self.store is not None:
            self.store.mark_latest(step)
        return step

    def flush(self) -> int | None:
        """Wait for an asynchronous save in progress; returns its step."""
        return self._finish_save(block=True)

    def state_fingerprint(self) -> dict[str, Any]:
        """This rank's parameter and optimizer shards, for bit-identity checks."""
        return self.live.live_state()

    def shutdown(self) -> None:
        if self.manager is not None:
            self.manager.shutdown(wait=False)
        if dist.is_initialized():
            dist.destroy_process_group()
