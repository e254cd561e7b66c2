"""One training step of one rank: forward and backward on its samples, then step only if torchft commits.

Inside the group FSDP2 reduce-scatters gradients and its all-reduce hook averages each shard
across the quorum's groups (:mod:`elastrain_trainer.group.cross_group`); with ddp whole gradients
are averaged after backward. ``manager.should_commit()`` then decides, for every rank of the group
at once, whether the optimizer steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributed.fsdp import FSDPModule
from torch.nn import functional as F  # noqa: N812

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.data import TokenSamples
from elastrain_trainer.group.checkpoints import CheckpointWriter
from elastrain_trainer.group.codec_reduce import ManagedCodecReduce
from elastrain_trainer.group.cross_group import CommClock, reduce_replicated_grads
from elastrain_trainer.group.messages import StepPlan, StepResult
from elastrain_trainer.parallel import ReduceHook


@dataclass(kw_only=True)
class StepRunner:
    """What a rank's step works with; built once by the worker's set-up."""

    cfg: TrainerConfig
    group_id: str
    rank: int
    world: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    samples: TokenSamples
    manager: Any
    reduce: ReduceHook
    clock: CommClock
    checkpoints: CheckpointWriter

    def run(self, plan: StepPlan) -> StepResult:
        """Forward and backward on this rank's part of the group's samples; step if the quorum commits."""
        start = time.perf_counter()
        saved = self.checkpoints.finish(block=False)
        if plan.checkpoint:
            self.checkpoints.start(plan)
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
        self.clock.restart()
        loss_sum = self._forward_backward(mine, scale)
        if plan.delay_seconds:
            time.sleep(plan.delay_seconds)
        if self.cfg.parallelism.strategy == "ddp":
            reduce_replicated_grads(self.model, self.clock.timed(self.reduce))
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
        traffic = self.reduce.end_step(step_seconds=end - start) if isinstance(self.reduce, ManagedCodecReduce) else {}
        return StepResult(
            group_id=self.group_id,
            rank=self.rank,
            step=int(self.manager.current_step()),
            committed=committed,
            loss_sum=loss_sum,
            tokens=len(mine) * tokens_per_sample,
            samples=len(mine),
            compute_seconds=max(0.0, compute_done - compute_start - self.clock.seconds),
            comm_seconds=self.clock.seconds + commit_seconds,
            step_seconds=end - start,
            participants=int(self.manager.num_participants()),
            checkpoint_saved=saved,
            extra=traffic,
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
