"""One rank of a replica group. The driver runs G of these per worker pod as Ray actors.

Per step the driver calls each group's leader (rank 0) twice: :meth:`RankWorker.lead_quorum`
(torchft forms the quorum across groups; a joining group heals from a live peer here,
synchronously, before its first forward), then :meth:`RankWorker.lead_train` with the group's
samples. The leader hands the command to the group's other ranks, which wait in
:meth:`RankWorker.follow`, over the group's store (:mod:`.control`) and returns every rank's answer.
Inside a group FSDP2 reduce-scatters gradients; FSDP2's all-reduce hook then averages each shard across the groups of
the quorum through the reduction ``compression`` selects (:mod:`elastrain_trainer.group.reduce`).
The optimizer steps only when ``manager.should_commit()`` says every rank of this group and the
quorum are healthy.

This module sets a rank up and answers the driver's calls; the step (:mod:`.step`), the
cross-group wiring (:mod:`.cross_group`), durable checkpoints (:mod:`.checkpoints`), evaluation
(:mod:`.evaluate`) and torchft's Manager (:mod:`.manager`) live beside it. The class is plain
Python (Ray wraps it with ``ray.remote``), so the same code also runs in a process without Ray.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch._C._distributed_c10d import TCPStore  # torch.distributed.TCPStore; its stub lives here
from torch.distributed.device_mesh import init_device_mesh

from elastrain_trainer.checkpoint import CheckpointStore, TrainState, load_train_state
from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.data import build_samples
from elastrain_trainer.export import export_model
from elastrain_trainer.group.checkpoints import CheckpointWriter, load_scaler_state
from elastrain_trainer.group.control import QUORUM, RELEASE, ControlChannel, LeaderLostError
from elastrain_trainer.group.cross_group import (
    CommClock,
    attach_cross_group_reduce,
    attach_overlapped_reduce,
    overlap_applies,
)
from elastrain_trainer.group.evaluate import evaluate_loss
from elastrain_trainer.group.manager import FaultTimeouts, build_manager, quiet_torchft_logs
from elastrain_trainer.group.messages import GroupAddress, QuorumInfo, SaveReport, StepPlan, StepResult
from elastrain_trainer.group.reduce import ReduceFactory, select_reduce
from elastrain_trainer.group.state import LiveState
from elastrain_trainer.group.step import StepRunner
from elastrain_trainer.models import build_built_model, materialize
from elastrain_trainer.optim import build_lr_scheduler, build_optimizer
from elastrain_trainer.overlap import CrossPodReducer
from elastrain_trainer.parallel import parallelize
from elastrain_trainer.precision import build_grad_scaler

__all__ = ["FaultTimeouts", "RankWorker", "quiet_torchft_logs"]

DEFAULT_TIMEOUTS = FaultTimeouts()


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
        checkpoint_space_check: bool = True,
        timeouts: FaultTimeouts = DEFAULT_TIMEOUTS,
        reduce_factory: ReduceFactory | None = None,
        advertise_host: str = "127.0.0.1",
    ) -> None:
        """``reduce_factory`` overrides the cross-group reduction ``compression`` selects."""
        self.cfg = TrainerConfig.model_validate_json(cfg_json)
        self.address = address
        self.rank = rank
        self.world = address.world_size
        self.store = CheckpointStore(checkpoint_dir, keep=checkpoint_keep) if checkpoint_dir else None
        self.async_checkpoint = async_checkpoint
        self.checkpoint_space_check = checkpoint_space_check
        self.timeouts = timeouts
        self.reduce_factory = reduce_factory if reduce_factory is not None else select_reduce(self.cfg)
        self.advertise_host = advertise_host
        self.healed = False
        self.heal_seconds = 0.0
        self.manager: Any = None
        self.checkpoints: CheckpointWriter | None = None
        self.overlapped: CrossPodReducer | None = None
        self._store: TCPStore | None = None

    # -- set-up -------------------------------------------------------------------------------

    def open_store(self) -> int:
        """Rank 0 only: start the group's rendezvous store on a port the kernel picks, and return it.

        The store listens from here on, so no other process can take the port between choosing it
        and binding it (reserving a free port and binding it later raced with every socket the node
        opened meanwhile). The driver passes the port to every rank's :meth:`setup`.
        """
        if self.rank != 0:
            raise RuntimeError(f"open_store is rank 0's job; rank {self.rank} of {self.address.group_id} connects")
        if self._store is None:
            self._store = TCPStore(
                self.address.store_host,
                0,
                self.world,
                is_master=True,
                wait_for_workers=False,
                timeout=timedelta(seconds=self.timeouts.connect_seconds),
            )
        return int(self._store.port)

    def setup(self, resume_step: int | None = None, store_port: int | None = None) -> int:
        """Join the group's process group, build the sharded model, start the torchft Manager.

        With ``resume_step`` load that durable checkpoint first (no live peer to heal from).
        ``store_port`` overrides the address's port (the one rank 0's :meth:`open_store`
        returned). Returns this rank's step.
        """
        if store_port is not None:
            self.address = dataclasses.replace(self.address, store_port=store_port)
        quiet_torchft_logs()

        torch.set_num_threads(1)
        timeout = timedelta(seconds=self.timeouts.collective_seconds)
        if self._store is None:  # rank 0 without open_store hosts the store on the address's own port
            self._store = TCPStore(
                self.address.store_host,
                self.address.store_port,
                self.world,
                is_master=self.rank == 0,
                wait_for_workers=False,
                timeout=timedelta(seconds=self.timeouts.connect_seconds),
            )
        self._store.set_timeout(timeout)
        self.channel = ControlChannel(self._store, rank=self.rank, world=self.world)
        dist.init_process_group("gloo", store=self._store, rank=self.rank, world_size=self.world, timeout=timeout)
        self.mesh = init_device_mesh("cpu", (self.world,))
        # Asynchronous checkpoint writes run collectives in a background thread: give them their own group.
        group = dist.new_group(backend="gloo")
        assert isinstance(group, dist.ProcessGroup)
        self.checkpoint_pg: dist.ProcessGroup = group
        # Built on meta (huggingface, python) or whole (builtin); sharded, then each rank fills its shards.
        self.built = build_built_model(self.cfg)
        model = parallelize(self.built, self.mesh, self.cfg)
        materialize(self.built, seed=self.cfg.seed)
        self.model = model
        self.optimizer = build_optimizer(model.parameters(), self.cfg.optimizer)
        self.scheduler = build_lr_scheduler(self.optimizer, self.cfg.lr_schedule, total_steps=self.cfg.steps)
        # fp16 loss scaling; found_inf is agreed over this group's process group (the default one).
        self.scaler = build_grad_scaler(self.cfg.precision)
        self.live = LiveState(model, self.optimizer, self.scheduler, scaler=self.scaler)
        self.samples = build_samples(self.cfg.data, self.cfg.model, seed=self.cfg.seed)
        train_state = TrainState(model=self.model, optimizer=self.optimizer, scheduler=self.scheduler)
        restored: dict[str, Any] | None = None
        if resume_step is not None:
            assert self.store is not None, "resuming needs a checkpoint directory"
            restored = load_train_state(train_state, self.store.step_dir(resume_step), process_group=self.checkpoint_pg)
            if self.scaler is not None:
                load_scaler_state(self.store.step_dir(resume_step), self.scaler)
        self.manager = build_manager(
            address=self.address,
            rank=self.rank,
            timeouts=self.timeouts,
            advertise_host=self.advertise_host,
            state_dict=self.live.live_state,
            load_state_dict=self._load_live,
        )
        if restored is not None:
            self.manager.load_state_dict(restored["manager"])
        clock = CommClock()
        reduce = self.reduce_factory(self.manager, self.cfg)
        self.overlapped = None
        if overlap_applies(self.cfg):
            self.overlapped = attach_overlapped_reduce(model, reduce, self.cfg)
        elif self.cfg.parallelism.strategy == "fsdp":
            attach_cross_group_reduce(model, reduce, clock)
        self.checkpoints = CheckpointWriter(
            self.store,
            rank=self.rank,
            async_save=self.async_checkpoint,
            train_state=train_state,
            manager=self.manager,
            process_group=self.checkpoint_pg,
            scaler=self.scaler,
            check_space=self.checkpoint_space_check,
        )
        self.steps = StepRunner(
            cfg=self.cfg,
            group_id=self.address.group_id,
            rank=self.rank,
            world=self.world,
            model=model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            samples=self.samples,
            manager=self.manager,
            reduce=reduce,
            clock=clock,
            checkpoints=self.checkpoints,
            scaler=self.scaler,
            overlapped=self.overlapped,
            forward=self.built.forward,
            loss=self.built.loss,
        )
        return int(self.manager.current_step())

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
        """Forward and backward on this rank's part of the group's samples; step if the quorum commits.

        With ``plan.quorum_after`` the next step's quorum is formed right away (pipelined control).
        """
        result = self.steps.run(plan)
        return dataclasses.replace(result, next_quorum=self.quorum()) if plan.quorum_after else result

    # -- the group's leader and its followers (one driver call per group per phase) -------------

    def lead_quorum(self) -> list[QuorumInfo]:
        """Rank 0: every rank of the group forms the quorum; their answers in rank order."""
        seq = self.channel.post(QUORUM)
        mine = self.quorum()
        return [mine, *self.channel.gather(seq)]

    def lead_train(self, plan: StepPlan) -> list[StepResult]:
        """Rank 0: every rank of the group trains ``plan``; their results in rank order."""
        seq = self.channel.post(plan)
        mine = self.train(plan)
        return [mine, *self.channel.gather(seq)]

    def release(self) -> None:
        """Rank 0: end the other ranks' :meth:`follow` calls, so the driver can call them itself."""
        self.channel.release()

    def follow(self) -> str:
        """Ranks 1..G-1: run the leader's commands until it releases them; why it returned.

        A command that raises ends the call with that error (the driver loses the group, as when
        a rank's own step call raised). A leader that died returns ``leader lost: ...``.
        """
        while True:
            try:
                command = self.channel.next_command()
            except LeaderLostError as error:
                return f"leader lost: {error}"
            if command == RELEASE:
                return "released"
            self.channel.answer(self.quorum() if command == QUORUM else self.train(command))

    def evaluate(self, start: int, stop: int) -> tuple[float, int]:
        """Loss sum and token count of this rank's part of held-out samples ``[start, stop)``."""
        return evaluate_loss(
            self.model,
            self.samples,
            start,
            stop,
            rank=self.rank,
            world=self.world,
            forward=self.built.forward,
            loss=self.built.loss,
        )

    # -- checkpoints, inspection, shutdown ----------------------------------------------------

    def flush(self) -> SaveReport:
        """Wait for an asynchronous save in progress; the step marked, or why it failed."""
        if self.checkpoints is None:
            return SaveReport()
        marked = self.checkpoints.finish(block=True)
        return SaveReport(marked=marked, failures=self.checkpoints.take_failures())

    def save_final(self, plan: StepPlan) -> SaveReport:
        """Save the trained state after the last step (every rank of the group); the step marked, or why not."""
        if self.checkpoints is None:
            return SaveReport()
        started = self.checkpoints.start(plan)
        finished = self.checkpoints.finish(block=True)
        marked = finished if finished is not None else started
        return SaveReport(marked=marked, failures=self.checkpoints.take_failures())

    def export(self, directory: str, name: str = "final") -> str | None:
        """Write the trained model as ``directory/name`` (every rank its slices); rank 0 returns the path."""
        self.flush()
        return export_model(self.built, directory, rank=self.rank, cfg=self.cfg, name=name)

    def state_fingerprint(self) -> dict[str, Any]:
        """This rank's parameter and optimizer shards, for bit-identity checks."""
        return self.live.live_state()

    def shutdown(self) -> None:
        if self.overlapped is not None:
            self.overlapped.close()
        if self.manager is not None:
            self.manager.shutdown(wait=False)
        if dist.is_initialized():
            dist.destroy_process_group()
        self._store = None  # rank 0's store stops listening once nothing holds it
