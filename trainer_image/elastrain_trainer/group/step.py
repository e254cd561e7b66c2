"""One training step of one rank: forward and backward on its samples, then step only if torchft commits.

Inside the group FSDP2 reduce-scatters gradients and its all-reduce hook averages each shard
across the quorum's groups (:mod:`elastrain_trainer.group.cross_group`): with ``overlap.asyncReduce``
in buckets behind backward, the step waiting after backward only for what is left; with ddp whole
gradients are averaged after backward. ``manager.should_commit()`` then decides, for every rank of
the group at once, whether the optimizer steps.

Every step reports where its time went (``phase_*`` in ``StepResult.extra``, seconds): ``data``
(building the batch), ``forward_backward`` (with the reductions done inside backward),
``reduce_exposed`` (cross-group reduction the step waited for), ``reduce_total`` (all of it, hidden
or not), ``commit`` (``should_commit``) and ``optimizer`` (clip, step, schedule, zero_grad).

fp16 loss scaling (``precision.lossScaling``): the loss is multiplied by the scaler's scale before
backward, so the cross-group average runs on scaled gradients and every group must use the same
scale (a healing group receives it, :mod:`.state`). After the reduction the gradients are
unscaled and checked for inf/nan; the verdict is all-reduced over the group, and since every group
holds the same averaged gradient, every group reaches the same one. An overflow is reported to
torchft as an error, so the step is **not committed**: no parameter, optimizer, scheduler or
torchft step changes, only the scale backs off, and ``StepResult.committed`` is False, so the
driver gives the step's samples back to the ledger and they are trained in a later step (a
committed no-op step would instead count them as trained and lose them). Steps that fail for
another reason leave the scale alone, so groups that did not all see the failure keep one scale.
Gradients are clipped after unscaling, on the true values.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import FSDPModule
from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.data import TokenSamples
from elastrain_trainer.group.checkpoints import CheckpointWriter
from elastrain_trainer.group.codec_reduce import ManagedCodecReduce
from elastrain_trainer.group.cross_group import CommClock, reduce_replicated_grads
from elastrain_trainer.group.manager import set_step_timeout
from elastrain_trainer.group.messages import PHASE_PREFIX, StepPlan, StepResult
from elastrain_trainer.models import ForwardFn, LossFn, call_module, next_token_loss
from elastrain_trainer.overlap import CrossPodReducer
from elastrain_trainer.parallel import ReduceHook
from elastrain_trainer.precision import clip_grad_norm, keep_scale, unscale_and_check


class GradientOverflowError(RuntimeError):
    """The step's averaged gradients hold inf/nan at this loss scale: torchft must not commit it."""


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
    scaler: ShardedGradScaler | None = None
    """fp16 loss scaling; None (bf16, fp32) leaves the step as it was."""
    overlapped: CrossPodReducer | None = None
    """The bucketed cross-group reduction behind backward (``overlap.asyncReduce``); None: in each hook."""
    forward: ForwardFn = call_module
    """The model source's forward: logits of a token batch."""
    loss: LossFn = next_token_loss
    """The model source's loss, summed over tokens."""
    _data_seconds: float = 0.0

    def run(self, plan: StepPlan) -> StepResult:
        """Forward and backward on this rank's part of the group's samples; step if the quorum commits."""
        start = time.perf_counter()
        saved = self.checkpoints.finish(block=False)
        if plan.checkpoint:
            marked = self.checkpoints.start(plan)  # a save marked on the way is reported too
            saved = marked if marked is not None else saved
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
        if isinstance(self.reduce, ManagedCodecReduce):
            self.reduce.set_strength(plan.compression_strength)  # before backward: its hooks reduce at this strength
        self.clock.restart()
        set_step_timeout(self.manager, plan.collective_timeout_seconds)
        if plan.stop_in_step:
            os.kill(os.getpid(), signal.SIGSTOP)  # fault injection: frozen until the driver fences the group
        if plan.raise_in_step:
            raise IndexError("index out of range in self")  # fault injection: what torch's embedding says
        self._data_seconds = 0.0
        backward_start = time.perf_counter()
        try:
            loss_sum = self._forward_backward(mine, scale)
        except BaseException:
            if self.overlapped is not None:
                self.overlapped.discard()  # a half backward's buckets never reach the next step
            raise
        backward_seconds = time.perf_counter() - backward_start
        if plan.delay_seconds:
            time.sleep(plan.delay_seconds)
        if self.cfg.parallelism.strategy == "ddp":
            reduce_replicated_grads(self.model, self.clock.timed(self.reduce))
        reduce_total = exposed = self.clock.seconds
        if self.overlapped is not None:
            wait_start = time.perf_counter()
            self.overlapped.finish()
            exposed = time.perf_counter() - wait_start
            timings = self.overlapped.timings
            reduce_total = timings.comm_seconds[-1]
            timings.comm_seconds.clear()  # reported per step; a long run keeps none of them
            timings.exposed_seconds.clear()
        if plan.exit_after_reduce:
            os._exit(1)  # fault injection: the survivors' reduction holds this group's gradient; it never reports
        overflow = self._unscale_and_check()
        compute_done = commit_start = time.perf_counter()
        committed = bool(self.manager.should_commit())
        commit_seconds = time.perf_counter() - commit_start
        optimizer_start = time.perf_counter()
        if committed:
            self._clip()
            if self.scaler is None:
                self.optimizer.step()
            else:
                self.scaler.step(self.optimizer)  # unscaled and finite already: steps
            self.scheduler.step()
        if self.scaler is not None:
            # Back off on an overflow, count a committed step towards growth, leave a failed step alone.
            if committed or overflow:
                self.scaler.update()
            else:
                keep_scale(self.scaler)
            extra: dict[str, float] = {"loss_scale": float(self.scaler.get_scale()), "overflow": float(overflow)}
        else:
            extra = {}
        self.optimizer.zero_grad(set_to_none=True)
        end = time.perf_counter()
        extra.update(
            {
                f"{PHASE_PREFIX}data": self._data_seconds,
                f"{PHASE_PREFIX}forward_backward": backward_seconds - self._data_seconds,
                f"{PHASE_PREFIX}reduce_exposed": exposed,
                f"{PHASE_PREFIX}reduce_total": reduce_total,
                f"{PHASE_PREFIX}commit": commit_seconds,
                f"{PHASE_PREFIX}optimizer": end - optimizer_start,
            }
        )
        if isinstance(self.reduce, ManagedCodecReduce):
            extra.update(self.reduce.end_step(step_seconds=end - start))
        return StepResult(
            group_id=self.group_id,
            rank=self.rank,
            step=int(self.manager.current_step()),
            committed=committed,
            loss_sum=loss_sum,
            tokens=len(mine) * tokens_per_sample,
            samples=len(mine),
            compute_seconds=max(0.0, compute_done - compute_start - exposed),
            comm_seconds=exposed + commit_seconds,
            step_seconds=end - start,
            participants=int(self.manager.num_participants()),
            checkpoint_saved=saved,
            checkpoint_failures=self.checkpoints.take_failures(),
            extra=extra,
        )

    def _unscale_and_check(self) -> bool:
        """Unscale the reduced gradients; True on an overflow, then reported so the step is not committed."""
        if self.scaler is None:
            return False
        if not unscale_and_check(self.scaler, self.optimizer):
            return False
        # inf/nan after a failed collective is garbage, not an overflow: agree over the group on
        # whether any rank already failed the step, so all ranks treat the scale alike.
        failed = torch.tensor([0 if self.manager.errored() is None else 1])
        dist.all_reduce(failed, op=dist.ReduceOp.MAX, group=self.scaler.process_group)
        if int(failed.item()):
            return False
        self.manager.report_error(
            GradientOverflowError(f"inf/nan gradients at loss scale {self.scaler.get_scale():g}; the step is redone")
        )
        return True

    def _clip(self) -> None:
        if self.cfg.max_grad_norm <= 0:
            return
        if self.scaler is None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        else:
            # One all-reduce per shard group; skips non-finite norms (never reached: overflow does not commit).
            clip_grad_norm(self.model.parameters(), self.cfg.max_grad_norm)

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
            data_start = time.perf_counter()
            inputs, targets = self.samples.batch(chunk.tolist() if len(chunk) else [0])
            self._data_seconds += time.perf_counter() - data_start
            loss = self.loss(self.forward(self.model, inputs), targets)
            scaled = loss * weight
            if self.scaler is not None:
                scaled = self.scaler.scale(scaled)
            scaled.backward()  # type: ignore[no-untyped-call]
            if len(chunk):
                total += float(loss.detach())
        return total
