"""The driver loop: reconcile groups with worker nodes, form the quorum, plan, train, record.

Each step has two phases, both Ray calls on every rank of every ready group:

1. ``quorum``: torchft's lighthouse forms the quorum. A group that just started heals here from a
   live peer. A group the quorum left out keeps its call pending and is in the next one.
2. ``train``: the ledger hands the quorum's groups their shares of the global batch (proportional
   to measured throughput); the step commits or not as torchft decides, and the ledger records or
   takes back the step's samples.

A group whose rank dies is killed whole and restarted on its node if the node is still there; a
new node gets a new group. When no group is left, new groups resume from the newest readable
durable checkpoint (never silently from step 0 if one exists).

Exactly once, across losses: a step's samples are settled by the step's outcome as a whole, those
of quorum members lost during its ``train`` phase included. If any surviving member commits, the
cross-group all-reduce completed, and a completed all-reduce holds every member's gradient (one
that died before contributing fails it for everyone), so the lost members' pieces were trained by
that step: the ledger and :attr:`Driver.committed` record them with it. If nobody commits, every
piece goes back. A group lost outside a step (in the quorum phase, or its node gone) gives its
pieces back at once.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from elastrain_trainer.balance import plan_step, update_throughput
from elastrain_trainer.checkpoint import CheckpointStore
from elastrain_trainer.compression import StepSample, StrengthController
from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.data import build_samples, split_samples
from elastrain_trainer.driver.groups import GroupHandle, start_group
from elastrain_trainer.driver.lighthouse import Lighthouse, LighthouseOptions
from elastrain_trainer.driver.pods import RayNodePods
from elastrain_trainer.group import QuorumInfo, StepPlan, StepResult
from elastrain_trainer.group.worker import FaultTimeouts
from elastrain_trainer.ledger import Piece, ShardLedger
from elastrain_trainer.metrics import StepMetrics

#: Perplexity is reported as exp(min(loss, this)) so a diverged run does not overflow.
MAX_LOG_PERPLEXITY = 50.0
#: Seconds between polls while waiting for groups to start.
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class ExitAfterReduce:
    """Fault injection: every rank of ``group_id`` exits right after step ``step``'s cross-group reduction.

    The survivors' update then holds the group's gradient while the group never reports the step.
    """

    group_id: str
    step: int


@dataclass(frozen=True)
class DriverOptions:
    """What the TrainingJob's checkpoint and runtime sections say (not part of TrainerConfig)."""

    checkpoint_dir: str | None = None
    checkpoint_interval: int = 0
    checkpoint_keep: int = 3
    async_checkpoint: bool = True
    lighthouse: LighthouseOptions = field(default_factory=LighthouseOptions)
    timeouts: FaultTimeouts = field(default_factory=FaultTimeouts)
    step_timeout_seconds: float = 120.0
    max_attempts: int = 10000
    start_groups: int = 1
    """Groups that must be ready before the first step of a fresh start (e.g. elastic.minReplicas)."""
    group_delays: dict[str, float] = field(default_factory=dict)
    """Artificial per-step slowdown by node id (load-balance tests and benchmarks)."""
    step_delay: float = 0.0
    """Artificial per-step slowdown of every group (local mode: watch resizes on a fast model)."""
    exit_after_reduce: ExitAfterReduce | None = None
    """Fault-injection seam for tests and chaos drills: one group's ranks exit after one step's all-reduce."""


@dataclass
class RunResult:
    metrics: list[StepMetrics]
    ledger: ShardLedger
    step: int
    events: list[dict[str, Any]]
    groups: dict[str, GroupHandle]
    committed: list[dict[str, list[Piece]]]
    """Per committed step (in order), the pieces each group trained."""


Hook = Callable[["Driver", int], None]


def _strength_sample(results: list[StepResult]) -> StepSample:
    """One committed step's measurements for the compression strength controller."""
    fractions = [r.comm_seconds / r.step_seconds for r in results if r.step_seconds > 0]
    return StepSample(
        comm_fraction=sum(fractions) / len(fractions) if fractions else 0.0,
        residual_sq=sum(r.extra.get("compression_residual_sq", 0.0) for r in results),
        signal_sq=sum(r.extra.get("compression_signal_sq", 0.0) for r in results),
    )


class Driver:
    def __init__(self, cfg: TrainerConfig, options: DriverOptions, *, pods: RayNodePods | None = None) -> None:
        self.cfg = cfg
        self.cfg_json = cfg.model_dump_json()
        self.options = options
        self.pods = pods or RayNodePods()
        self.lighthouse = Lighthouse(options.lighthouse)
        self.store = (
            CheckpointStore(options.checkpoint_dir, keep=options.checkpoint_keep) if options.checkpoint_dir else None
        )
        total = build_samples(cfg.data, cfg.model, seed=cfg.seed).num_samples
        self.num_samples, self.eval_range = split_samples(total, evaluate=cfg.eval_interval_steps > 0)
        self.ledger = self._fresh_ledger()
        self.groups: dict[str, GroupHandle] = {}
        self.throughput: dict[str, float | None] = {}
        self.step = 0
        self.last_checkpoint = 0
        self.metrics: list[StepMetrics] = []
        self.committed: list[dict[str, list[Piece]]] = []
        self.events: list[dict[str, Any]] = []
        self.compression = StrengthController.from_config(cfg.compression)
        """The dynamic compression policy across groups (None when off). Not in the checkpoint record:
        a new driver starts from the configured strength."""
        self._serial = 0
        self._training_step: int | None = None
        """The step whose ``train`` phase is running, if any: groups lost then settle with it."""
        self.start_time = time.monotonic()

    def _fresh_ledger(self) -> ShardLedger:
        return ShardLedger(
            num_samples=self.num_samples,
            num_shards=min(self.cfg.data.num_shards, self.num_samples),
            seed=self.cfg.seed,
            shuffle=self.cfg.data.shuffle,
        )

    def event(self, kind: str, **data: Any) -> None:
        self.events.append({"kind": kind, "step": self.step, "time": time.monotonic() - self.start_time, **data})

    # -- groups -------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Start a group on every worker node without one; restore from a checkpoint if none is alive."""
        alive = self.pods.alive()
        for group_id, group in list(self.groups.items()):
            if group.node_id not in alive:
                self.lose_group(group_id, reason="node gone")
        busy = {g.node_id for g in self.groups.values()}
        free = [node_id for node_id in sorted(alive) if node_id not in busy]
        if not free:
            return
        resume_step: int | None = None
        if not self.groups:
            resume_step = self._restore()
        for node_id in free:
            node = alive[node_id]
            self._serial += 1
            group_id = f"group{self._serial}"
            self.groups[group_id] = start_group(
                group_id=group_id,
                node_id=node_id,
                node_ip=self.pods.address(node),
                ranks=self.pods.ranks(node),
                cfg_json=self.cfg_json,
                lighthouse=self.lighthouse.address,
                resume_step=resume_step,
                worker_kwargs={
                    "checkpoint_dir": self.options.checkpoint_dir,
                    "checkpoint_keep": self.options.checkpoint_keep,
                    "async_checkpoint": self.options.async_checkpoint,
                    "timeouts": self.options.timeouts,
                },
                started_at=time.monotonic(),
            )
            self.event("group_started", group=group_id, node=node_id, resume_step=resume_step)

    def _restore(self) -> int | None:
        """No live group: reset to the newest readable checkpoint (or the start if there is none).

        Every newer checkpoint passed over (truncated, corrupted, unreadable) is an event with its reason.
        """
        choice = self.store.find_newest() if self.store else None
        for skipped in choice.skipped if choice else ():
            self.event(
                "checkpoint_skipped", checkpoint_step=skipped.step, path=str(skipped.path), reason=skipped.reason
            )
        record = choice.record if choice else None
        if record is None:
            if self.step:
                self.event("restart_from_scratch", lost_step=self.step)
            self.ledger = self._fresh_ledger()
            self.step = 0
            return None
        self.ledger = ShardLedger.from_state_dict(record.ledger)
        if self.step != record.step:
            self.event("restored", from_step=self.step, checkpoint_step=record.step)
        self.step = record.step
        self.last_checkpoint = record.step
        return record.step

    def _state_lost(self, members: dict[str, QuorumInfo]) -> None:
        """Every group that held the trained state is gone; the quorum has only fresh groups.

        With a checkpoint the fresh groups are restarted to load it; without one training starts
        over (the ledger too), which is recorded as an event rather than done silently.
        """
        newest = max(info.step for info in members.values())
        self.event("state_lost", quorum_step=newest, groups=sorted(members))
        if self.store is not None and self.store.newest_readable() is not None:
            for group_id in list(self.groups):
                self.lose_group(group_id, reason="state lost: restart from checkpoint")
            return
        self.event("restart_from_scratch", lost_step=self.step)
        self.ledger = self._fresh_ledger()
        self.committed.clear()
        self.step = newest

    def lose_group(self, group_id: str, *, reason: str) -> None:
        group = self.groups.pop(group_id, None)
        if group is None:
            return
        group.kill()
        self.throughput.pop(group_id, None)
        # Lost while training a step: its pieces of that step are settled with the step (see the module docstring).
        self.ledger.give_back_group(group_id, during_step=self._training_step)
        self.event("group_lost", group=group_id, reason=reason, during_step=self._training_step)

    def _poll_setup(self) -> None:
        for group_id, group in list(self.groups.items()):
            if group.ready:
                continue
            done, _ = ray.wait(group.setup_refs, num_returns=len(group.setup_refs), timeout=0)
            if len(done) < len(group.setup_refs):
                continue
            try:
                steps = ray.get(group.setup_refs)
            except (RayActorError, RayTaskError) as error:
                self.lose_group(group_id, reason=f"set-up failed: {error}")
                continue
            group.ready = True
            group.step_at_ready = max(steps)
            group.info["setup_seconds"] = time.monotonic() - group.started_at
            self.event("group_ready", group=group_id, setup_seconds=group.info["setup_seconds"])

    # -- a step -------------------------------------------------------------------------------

    def _quorum(self) -> dict[str, QuorumInfo]:
        """Phase 1: returns the groups of one complete quorum (rank 0's view), {} if none formed."""
        deadline = time.monotonic() + self.options.step_timeout_seconds
        infos: dict[str, QuorumInfo] = {}
        while time.monotonic() < deadline:
            # A group that finishes set-up now joins this quorum: torchft will not form a new quorum
            # while half of the heartbeating groups have not asked for one.
            self._poll_setup()
            ready = [g for g in self.groups.values() if g.ready]
            for group in ready:
                if group.quorum_refs is None and group.group_id not in infos:
                    group.quorum_refs = [actor.quorum.remote() for actor in group.actors]
            for group in ready:
                if group.group_id in infos or group.group_id not in self.groups or group.quorum_refs is None:
                    continue
                answers = self._collect(group, group.quorum_refs, "quorum")
                if answers is None:
                    continue
                group.quorum_refs = None
                infos[group.group_id] = answers[0]
            if infos:
                newest = max(info.quorum_id for info in infos.values())
                members = {g: i for g, i in infos.items() if i.quorum_id == newest}
                if len(members) == next(iter(members.values())).participants:
                    return members
                waiting = [g for g in self.groups.values() if g.quorum_refs is not None and g.group_id not in infos]
                if not waiting:
                    # The quorum counts a group that died after joining it: it can never complete. The
                    # survivors ask again; the lighthouse drops the dead group after its heartbeat timeout.
                    self.event(
                        "quorum_abandoned",
                        answered=sorted(infos),
                        participants=max(i.participants for i in members.values()),
                    )
                    return {}
            if not any(g.group_id in self.groups for g in ready):
                return {}
            time.sleep(0.002)
        self.event(
            "quorum_timeout",
            answered={g: (i.quorum_id, i.participants) for g, i in infos.items()},
            waiting=sorted(g.group_id for g in self.groups.values() if g.quorum_refs is not None),
        )
        return {}

    def _collect(self, group: GroupHandle, refs: list[Any], phase: str) -> list[Any] | None:
        """The ranks' answers once all are in; None while waiting. A failed rank loses its group at once
        (its other ranks are killed, so their torchft Manager stops heartbeating and the quorum moves on)."""
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in done:
            try:
                ray.get(ref)
            except (RayActorError, RayTaskError) as error:
                self.lose_group(group.group_id, reason=f"{phase} failed: {type(error).__name__}")
                return None
        if len(done) < len(refs):
            return None
        return list(ray.get(refs))

    def _train(self, members: dict[str, QuorumInfo]) -> StepMetrics | None:
        """Phase 2: plan shares over the quorum, train, commit or give back the samples.

        The step's samples are settled as a whole, those of members lost during the step included.
        """
        step = max(info.step for info in members.values())
        self.step = step
        ranks = {g: len(self.groups[g].actors) for g in members}
        plan = plan_step(
            self.cfg.global_batch_size,
            {g: self.throughput.get(g) for g in members},
            min_share=max(ranks.values()),
        )
        checkpoint_group = None
        if (
            self.store is not None
            and self.options.checkpoint_interval
            and step > 0
            and step % self.options.checkpoint_interval == 0
            and step > self.last_checkpoint
        ):
            checkpoint_group = sorted(members)[0]
            self.last_checkpoint = step
        ledger_state = self.ledger.state_dict() if checkpoint_group else None
        assignment = self.ledger.assign(step, plan.shares)
        fault = self.options.exit_after_reduce
        strength = self.compression.strength if self.compression is not None else None
        refs: dict[str, list[Any]] = {}
        for group_id in members:
            group = self.groups[group_id]
            group_plan = StepPlan(
                step=step,
                pieces=assignment[group_id],
                weight=plan.weights[group_id],
                participants=len(members),
                checkpoint=group_id == checkpoint_group,
                ledger_state=ledger_state if group_id == checkpoint_group else None,
                delay_seconds=self.options.step_delay + self.options.group_delays.get(group.node_id, 0.0),
                compression_strength=strength,
                exit_after_reduce=fault == ExitAfterReduce(group_id, step),
            )
            refs[group_id] = [actor.train.remote(group_plan) for actor in group.actors]
        self._training_step = step
        try:
            results = self._await_results(refs)
        finally:
            self._training_step = None
        committed = any(r[0].committed for r in results.values())
        if committed:
            settled = self.ledger.in_flight(step)  # every member's pieces, those of lost members included
            self.ledger.commit(step)
            del self.committed[step:]  # work after a restored checkpoint is redone
            self.committed.append(settled)
            self.step = step + 1
        else:
            self.ledger.give_back(step)
        for group_id, group_results in results.items():
            compute = max(r.compute_seconds for r in group_results)
            if committed:
                self.throughput[group_id] = update_throughput(
                    self.throughput.get(group_id), plan.shares[group_id], compute
                )
            saved = [r.checkpoint_saved for r in group_results if r.checkpoint_saved is not None]
            if saved:
                self.event("checkpoint", group=group_id, checkpoint_step=saved[0])
        every = [r for rs in results.values() for r in rs]
        if not every:
            return None
        if committed and self.compression is not None:
            before = self.compression.strength
            decision = self.compression.observe(step, _strength_sample(every))
            if decision not in (None, "keep") and self.compression.strength != before:  # not at a bound already
                self.event(
                    "compression_adjusted", decision=decision, strength=self.compression.strength, previous=before
                )
        val_loss = self._evaluate(sorted(results)[0]) if committed and self._eval_due() else None
        tokens = sum(r.tokens for r in every)
        step_seconds = max(r.step_seconds for r in every)
        return StepMetrics(
            step=self.step,
            committed=committed,
            loss=sum(r.loss_sum for r in every) / max(1, tokens),
            tokens_per_second=tokens / max(step_seconds, 1e-9),
            step_seconds=step_seconds,
            compute_seconds=max(r.compute_seconds for r in every),
            comm_seconds=max(r.comm_seconds for r in every),
            groups=len(results),
            world_size=len(every),
            wall_time=time.monotonic() - self.start_time,
            val_loss=val_loss,
            perplexity=math.exp(min(val_loss, MAX_LOG_PERPLEXITY)) if val_loss is not None else None,
            compression_bytes_sent=int(sum(r.extra.get("compression_bytes_sent", 0.0) for r in every)),
            compression_strength=float(strength) if strength is not None else None,
        )

    def _await_results(self, refs: dict[str, list[Any]]) -> dict[str, list[StepResult]]:
        """Every group's step results; a group that fails or times out is lost (and has none)."""
        results: dict[str, list[StepResult]] = {}
        deadline = time.monotonic() + self.options.step_timeout_seconds
        while refs:
            for group_id, group_refs in list(refs.items()):
                handle = self.groups.get(group_id)
                answers = self._collect(handle, group_refs, "train") if handle is not None else None
                if answers is not None:
                    results[group_id] = answers
                if answers is not None or group_id not in self.groups:
                    del refs[group_id]
            if refs and time.monotonic() > deadline:
                self.event("train_timeout", waiting=sorted(refs))
                for group_id in list(refs):
                    self.lose_group(group_id, reason="train timed out")
                break
            if refs:
                time.sleep(0.001)
        return results

    def _eval_due(self) -> bool:
        interval = self.cfg.eval_interval_steps
        return interval > 0 and len(self.eval_range) > 0 and (self.step % interval == 0 or self.step >= self.cfg.steps)

    def _evaluate(self, group_id: str) -> float | None:
        """Mean held-out loss of one group (all groups hold the same parameters after a committed step)."""
        group = self.groups.get(group_id)
        if group is None:
            return None
        refs = [a.evaluate.remote(self.eval_range.start, self.eval_range.stop) for a in group.actors]
        try:
            parts: list[tuple[float, int]] = ray.get(refs, timeout=self.options.step_timeout_seconds)
        except (RayActorError, RayTaskError, GetTimeoutError):
            return None  # the group is lost; the next step's quorum notices
        tokens = sum(t for _, t in parts)
        return float(sum(s for s, _ in parts)) / max(1, tokens)

    def run(self, *, hook: Hook | None = None, on_step: Callable[[StepMetrics], None] | None = None) -> RunResult:
        """Train until ``cfg.steps`` steps committed; ``hook(driver, step)`` runs before every attempt."""
        attempts = 0
        while self.step < self.cfg.steps and attempts < self.options.max_attempts:
            attempts += 1
            if hook is not None:
                hook(self, self.step)
            self.reconcile()
            self._poll_setup()
            ready = sum(1 for g in self.groups.values() if g.ready)
            if not ready or (not self.committed and ready < self.options.start_groups):
                time.sleep(POLL_SECONDS)
                attempts -= 1  # waiting for groups to start is not an attempt
                continue
            members = self._quorum()
            if not members:
                continue
            if max(info.step for info in members.values()) < self.step:
                self._state_lost(members)
                continue
            healed = [g for g, info in members.items() if info.healed]
            for group_id in healed:
                self.event("group_healed", group=group_id, heal_seconds=members[group_id].heal_seconds)
            metrics = self._train(members)
            if metrics is not None:
                self.metrics.append(metrics)
                if on_step is not None:
                    on_step(metrics)
        self.flush()
        return RunResult(
            metrics=self.metrics,
            ledger=self.ledger,
            step=self.step,
            events=self.events,
            groups=self.groups,
            committed=self.committed,
        )

    def flush(self) -> None:
        """Wait for asynchronous checkpoint saves to finish and be marked."""
        refs = [actor.flush.remote() for g in self.groups.values() if g.ready for actor in g.actors]
        with contextlib.suppress(RayActorError, RayTaskError, GetTimeoutError):
            ray.get(refs, timeout=self.options.step_timeout_seconds)

    def fingerprints(self) -> dict[str, list[dict[str, Any]]]:
        """Every ready group's per-rank state (parameters and optimizer shards)."""
        return {
            g.group_id: ray.get([a.state_fingerprint.remote() for a in g.actors])
            for g in self.groups.values()
            if g.ready
        }

    def shutdown(self) -> None:
        for group in list(self.groups.values()):
            with contextlib.suppress(Exception):  # shutting down: a dead rank is fine
                ray.get([a.shutdown.remote() for a in group.actors], timeout=10)
            group.kill()
        self.groups.clear()
        self.lighthouse.shutdown()
