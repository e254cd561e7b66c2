"""The driver loop: reconcile groups with worker nodes, form the quorum, plan, train, record.

Each step has two phases, each one Ray call on the leader (rank 0) of every ready group, which hands
it to the group's other ranks over the group's own store (:mod:`elastrain_trainer.group.control`):

1. ``quorum`` (:mod:`~elastrain_trainer.driver.quorum`): torchft's lighthouse forms the quorum.
2. ``train`` (:mod:`~elastrain_trainer.driver.train`): the ledger hands the quorum's groups their
   shares of the global batch; the step commits or not as torchft decides, and the ledger records
   or takes back the step's samples, exactly once across losses.

A group whose rank dies is killed whole and restarted on its node if the node is still there; a
new node gets a new group. When no group is left, new groups resume from the newest readable
durable checkpoint (:mod:`~elastrain_trainer.driver.restore`).

Before any group starts, the data is checked (:mod:`~elastrain_trainer.data.checks`): bad data
stops the driver at once with a :class:`~elastrain_trainer.errors.SpecError`. Groups whose set-up
or steps keep raising with no step committed stop it too (:mod:`~elastrain_trainer.driver.setup_errors`,
:mod:`~elastrain_trainer.driver.step_errors`). Every event is a line in the log as it happens
(:mod:`~elastrain_trainer.driver.story`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

from elastrain_trainer.checkpoint import CheckpointStore
from elastrain_trainer.compression import StrengthController
from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.data import build_samples, split_samples
from elastrain_trainer.data.checks import DataReport, check_data
from elastrain_trainer.driver import train
from elastrain_trainer.driver.calls import (
    fingerprint_groups,
    flush_groups,
    poll_setup,
    save_final_checkpoint,
    shutdown_groups,
)
from elastrain_trainer.driver.checkpoint_health import CheckpointHealth, decide_checkpoint_give_up, record_saves
from elastrain_trainer.driver.export import decide_export_group, export_group
from elastrain_trainer.driver.export_request import (
    ExportRequests,
    decide_request_export,
    request_export_name,
    served_requests,
)
from elastrain_trainer.driver.groups import GroupHandle, start_group
from elastrain_trainer.driver.leave import LeavePause, LeaveRequests, decide_leave, leaving_nodes
from elastrain_trainer.driver.lighthouse import Lighthouse
from elastrain_trainer.driver.options import DriverOptions, ExitAfterReduce, RunResult
from elastrain_trainer.driver.out_of_quorum import OutOfQuorum
from elastrain_trainer.driver.pods import RayNodePods
from elastrain_trainer.driver.quorum import QUORUM_CALLED_AT, decide_ahead, form_quorum
from elastrain_trainer.driver.restore import STATE_LOST_REASON, decide_resume, handle_state_lost
from elastrain_trainer.driver.setup_errors import GroupSetupError, decide_setup_give_up
from elastrain_trainer.driver.step_errors import StepFailureError, decide_failing_report, decide_step_give_up
from elastrain_trainer.driver.step_metrics import eval_due, evaluate_group, measure_step
from elastrain_trainer.driver.story import StoryLog
from elastrain_trainer.driver.watchdog import HUNG_REASON, StepTimes, compute_hang_bounds, decide_stalled
from elastrain_trainer.group import QuorumInfo, StepPlan
from elastrain_trainer.ledger import Piece, ShardLedger
from elastrain_trainer.metrics import StepMetrics

__all__ = [
    "POLL_SECONDS",
    "Driver",
    "DriverOptions",
    "ExitAfterReduce",
    "GroupSetupError",
    "Hook",
    "RunResult",
    "StepFailureError",
]

#: Seconds between polls while waiting for groups to start.
POLL_SECONDS = 0.05
#: Why a group whose node left the Ray cluster is lost.
NODE_GONE_REASON = "node gone"

Hook = Callable[["Driver", int], None]


class Driver:
    def __init__(
        self,
        cfg: TrainerConfig,
        options: DriverOptions,
        *,
        pods: RayNodePods | None = None,
        data_report: DataReport | None = None,
    ) -> None:
        """``data_report``: the data was checked already (by the head, before Ray started); else it is here."""
        self.cfg = cfg
        self.cfg_json = cfg.model_dump_json()
        self.options = options
        self.start_time = time.monotonic()
        self.step = 0
        self.events: list[dict[str, Any]] = []
        self.export_requests = ExportRequests()
        """Exports asked for while training (the head's progress server fills it; served at a step boundary)."""
        self.leave_requests = LeaveRequests()
        """Pod addresses the operator is about to delete (the head's progress server fills it; see :mod:`.leave`)."""
        self.left_nodes: set[str] = set()
        """Ray nodes asked to leave: no group is started on them again."""
        self._leave_handled: frozenset[str] = frozenset()
        self.leave_pause = LeavePause()
        self.story = StoryLog()
        """The events as log lines, as they happen (what ``kubectl logs`` on the head shows)."""
        self.data_report: DataReport | None = self._check_data(data_report)
        self.pods = pods or RayNodePods()
        self.lighthouse = Lighthouse(options.lighthouse)
        self.store = (
            CheckpointStore(options.checkpoint_dir, keep=options.checkpoint_keep) if options.checkpoint_dir else None
        )
        self.checkpoint_health = CheckpointHealth(
            location=f"file://{options.checkpoint_dir}" if options.checkpoint_dir else "",
            max_failures=options.checkpoint_max_failures,
            last_good=self.store.latest() if self.store else None,
        )
        """Saves failing in a row, and the newest complete checkpoint (see :mod:`.checkpoint_health`)."""
        total = build_samples(cfg.data, cfg.model, seed=cfg.seed).num_samples
        self.num_samples, self.eval_range = split_samples(total, evaluate=cfg.eval_interval_steps > 0)
        self.ledger = self._fresh_ledger()
        self.groups: dict[str, GroupHandle] = {}
        self.throughput: dict[str, float | None] = {}
        self.last_checkpoint = 0
        self.metrics: list[StepMetrics] = []
        self.committed: list[dict[str, list[Piece]]] = []
        self.compression = StrengthController.from_config(cfg.compression)
        """The dynamic compression policy across groups (None when off). Not in the checkpoint record:
        a new driver starts from the configured strength."""
        self._serial = 0
        self.setup_errors: list[str] = []
        """What group set-up raised since the last committed step (see :func:`decide_setup_give_up`)."""
        self.step_errors: list[str] = []
        """What groups' steps raised since the last committed step (see :func:`decide_step_give_up`)."""
        self.node_losses: dict[str, int] = {}
        """Per node, groups lost in a row with no commit by one of its groups (see :func:`decide_failing_report`)."""
        self.node_reported: set[str] = set()
        self._training_step: int | None = None
        """The step whose ``train`` phase is running, if any: groups lost then settle with it."""
        self._ahead: dict[str, QuorumInfo] = {}
        """The next step's quorum, as the last step's members formed it right after it (pipelined control)."""
        self.step_times = StepTimes(window=options.hang.window)
        """Recent committed step times per group: the step watchdog's measure of the job's pace."""
        self.out_of_quorum = OutOfQuorum()
        self.last_commit_at: float | None = None
        """When the newest step committed (monotonic): the step watchdog's measure between steps."""
        """Worker pods whose group was dropped and has not trained since (reported to the operator)."""

    def _check_data(self, report: DataReport | None) -> DataReport | None:
        """Check the data before any group starts: a SpecError stops the driver now; warnings are events."""
        report = report or check_data(self.cfg)
        if report is not None:
            self.event("data_checked", report=report.describe())
            for warning in report.warnings:
                self.event("data_warning", message=warning)
        return report

    def _fresh_ledger(self) -> ShardLedger:
        return ShardLedger(
            num_samples=self.num_samples,
            num_shards=min(self.cfg.data.num_shards, self.num_samples),
            seed=self.cfg.seed,
            shuffle=self.cfg.data.shuffle,
        )

    def event(self, kind: str, **data: Any) -> None:
        record = {"kind": kind, "step": self.step, "time": time.monotonic() - self.start_time, **data}
        self.events.append(record)
        self.story.record(kind, record, now=time.monotonic())

    # -- groups -------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Start a group on every worker node without one; restore from a checkpoint if none is alive."""
        alive = self.pods.alive()
        self.out_of_quorum.keep(alive)
        for group_id, group in list(self.groups.items()):
            if group.node_id not in alive:
                self.lose_group(group_id, reason=NODE_GONE_REASON)
        busy = {g.node_id for g in self.groups.values()} | self.left_nodes
        leaving = self.leave_requests.asked()
        free = [n for n in sorted(alive) if n not in busy and self.pods.pod_address(alive[n]) not in leaving]
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
                worker_kwargs=self.options.worker_kwargs(),
                started_at=time.monotonic(),
                ray_node_id=self.pods.ray_node_id(node_id),
                worker_cls=self.options.worker_seam.cls if self.options.worker_seam is not None else None,
            )
            self.event("group_started", group=group_id, node=node_id, resume_step=resume_step)

    def _restore(self) -> int | None:
        """No live group: reset to the newest readable checkpoint (or the start); the step groups resume from."""
        resume = decide_resume(self.store.find_newest() if self.store else None, step=self.step)
        for kind, data in resume.events:
            self.event(kind, **data)
        if resume.resume_step is None or resume.ledger_state is None:
            self.ledger = self._fresh_ledger()
            self.last_checkpoint = 0  # starting over: checkpoint again from the first interval
        else:
            self.ledger = ShardLedger.from_state_dict(resume.ledger_state)
            self.last_checkpoint = resume.resume_step
            if self.compression is not None and resume.compression_strength is not None:
                self.compression.strength = resume.compression_strength  # every group resumes at the saved one
        self.step = resume.step
        return resume.resume_step

    def lose_group(self, group_id: str, *, reason: str, error: BaseException | None = None) -> None:
        group = self.groups.pop(group_id, None)
        if group is None:
            return
        group.kill()
        self.throughput.pop(group_id, None)
        self.step_times.forget(group_id)
        # Lost while training a step: its pieces of that step are settled with the step (see driver/train.py).
        self.ledger.give_back_group(group_id, during_step=self._training_step)
        self.event("group_lost", group=group_id, reason=reason, during_step=self._training_step)
        if error is not None:
            cause = reason.split(": ", 1)[-1]
            self.story.traceback(cause, str(error))
            self.step_errors.append(f"{group_id}: {cause}")
        if reason != STATE_LOST_REASON:  # the driver's decision to restore, not the group's failure
            self._count_node_loss(group.node_id, reason)
            self.out_of_quorum.dropped(group.node_id, hung=reason.startswith(HUNG_REASON))

    def leave_on_request(self) -> None:
        """Between steps, remove the groups of the pods the operator is about to delete (see :mod:`.leave`)."""
        asked = self.leave_requests.asked()
        if asked == self._leave_handled:
            return  # reconcile starts no group at an asked address: nothing new to remove
        self._leave_handled = asked
        addresses = {node_id: self.pods.pod_address(node) for node_id, node in self.pods.alive().items()}
        self.left_nodes |= leaving_nodes(asked, addresses)
        decision = decide_leave(asked, {g: addresses.get(h.node_id, "") for g, h in self.groups.items()})
        for group_id in decision.remove:
            group = self.groups.pop(group_id)
            group.kill()
            self.throughput.pop(group_id, None)
            self.ledger.give_back_group(group_id)  # between steps: nothing of it is in flight
            self._ahead = {}
            self.event("group_left", group=group_id, node=group.node_id, address=addresses.get(group.node_id))
        self.leave_pause.left(decision.remove)
        self.leave_requests.done(decision.done)

    def _give_up_on_step_errors(self) -> None:
        give_up = decide_step_give_up(self.step_errors, limit=self.options.max_step_errors)
        if give_up is not None:
            self.event("steps_given_up", message=give_up, errors=list(self.step_errors))
            raise StepFailureError(give_up)

    def _give_up_on_checkpoints(self) -> None:
        give_up = decide_checkpoint_give_up(self.checkpoint_health)
        if give_up is not None:
            self.event("checkpoints_given_up", message=str(give_up))
            raise give_up

    def _count_node_loss(self, node_id: str, reason: str) -> None:
        losses = self.node_losses[node_id] = self.node_losses.get(node_id, 0) + 1
        if decide_failing_report(losses, reported=node_id in self.node_reported):
            self.node_reported.add(node_id)
            self.event("group_failing", node=node_id, losses=losses, reason=reason)

    def _poll_setup(self) -> None:
        self.setup_errors += poll_setup(self.groups, lose_group=self.lose_group, event=self.event)
        give_up = decide_setup_give_up(self.setup_errors, limit=self.options.max_setup_errors)
        if give_up is not None:
            self.event("setup_given_up", message=give_up, errors=list(self.setup_errors))
            raise GroupSetupError(give_up)

    # -- a step -------------------------------------------------------------------------------

    def _quorum(self) -> dict[str, QuorumInfo]:
        """Phase 1: returns the groups of one complete quorum (rank 0's view), {} if none formed.

        The last step's members formed this quorum already, right after it: when nothing changed it
        is complete without a call; a group that joined or was lost makes every group ask again.
        """
        ready = [g.group_id for g in self.groups.values() if g.ready]
        answered, self._ahead = decide_ahead(self._ahead, ready), {}
        return form_quorum(
            self.groups,
            timeout_seconds=self.options.step_timeout_seconds,
            poll_setup=self._poll_setup,
            lose_group=self.lose_group,
            event=self.event,
            answered=answered,
        )

    def _train(self, members: dict[str, QuorumInfo]) -> StepMetrics | None:
        """Phase 2: plan shares over the quorum, train, commit or give back the samples, measure."""
        step = max(info.step for info in members.values())
        self.step = step
        checkpoint_group = train.decide_checkpoint_group(
            members,
            step=step,
            interval=self.options.checkpoint_interval,
            last_checkpoint=self.last_checkpoint,
            enabled=self.store is not None,
        )
        if checkpoint_group is not None:
            self.last_checkpoint = step
        self._training_step = step
        try:
            outcome = train.train_step(
                members,
                step=step,
                checkpoint_group=checkpoint_group,
                global_batch_size=self.cfg.global_batch_size,
                options=self.options,
                groups=self.groups,
                ledger=self.ledger,
                committed_log=self.committed,
                throughput=self.throughput,
                strength=self.compression.strength if self.compression is not None else None,
                lose_group=self.lose_group,
                event=self.event,
                quorum_after=self.options.quorum_ahead and step + 1 < self.cfg.steps,
                hang_bounds=self._hang_bounds(members, slow=[checkpoint_group] if checkpoint_group else []),
            )
        finally:
            self._training_step = None
        self._ahead = outcome.ahead
        if outcome.committed:
            self.step = step + 1
            self.last_commit_at = time.monotonic()
            self.step_times.record({g: max(r.step_seconds for r in rs) for g, rs in outcome.results.items() if rs})
            # Training goes on: a node whose groups keep failing set-up costs only its own share.
            self.setup_errors.clear()
            self.step_errors.clear()
            for group_id in outcome.results:
                node_id = self.groups[group_id].node_id if group_id in self.groups else None
                if node_id is not None:
                    self.node_losses.pop(node_id, None)
                    self.node_reported.discard(node_id)
                    self.out_of_quorum.trained([node_id])
        train.record_group_results(
            outcome, throughput=self.throughput, checkpoints=self.checkpoint_health, event=self.event
        )
        due = outcome.committed and eval_due(
            self.step, interval=self.cfg.eval_interval_steps, eval_samples=len(self.eval_range), steps=self.cfg.steps
        )
        evaluate = (lambda: self._evaluate(sorted(outcome.results)[0])) if due else None
        return measure_step(
            outcome, compression=self.compression, evaluate=evaluate, start_time=self.start_time, event=self.event
        )

    def _hang_bounds(self, members: Collection[str], *, slow: Collection[str] = ()) -> dict[str, float]:
        """The step watchdog's bound of every member (see :mod:`.watchdog`); ``slow``: members saving a checkpoint."""
        return compute_hang_bounds(
            members,
            self.step_times.by_group(),
            committed_steps=self.step_times.committed_steps,
            policy=self.options.hang,
            slow=slow,
        )

    def _fence_stalled(self) -> None:
        """Fence the groups the step watchdog finds hung between steps (their quorum call never answered)."""
        called = {
            g.group_id: g.info[QUORUM_CALLED_AT]
            for g in self.groups.values()
            if g.quorum_refs is not None and QUORUM_CALLED_AT in g.info
        }
        if not called or self.last_commit_at is None:
            return
        bounds = self._hang_bounds(called)
        for hung in decide_stalled(called, now=time.monotonic(), last_commit_at=self.last_commit_at, bounds=bounds):
            self.event(
                "group_hung",
                group=hung.group_id,
                node=self.groups[hung.group_id].node_id,
                phase=hung.phase,
                waited_seconds=hung.waited_seconds,
                bound_seconds=hung.bound_seconds,
            )
            self.lose_group(hung.group_id, reason=hung.describe())

    def _evaluate(self, group_id: str) -> float | None:
        """Mean held-out loss of one group (all groups hold the same parameters after a committed step)."""
        group = self.groups.get(group_id)
        return evaluate_group(group, self.eval_range, timeout_seconds=self.options.step_timeout_seconds)

    def _state_lost(self, members: dict[str, QuorumInfo]) -> None:
        """Every group that held the trained state is gone; the quorum has only fresh groups."""
        start_over = handle_state_lost(
            members,
            step=self.step,
            store=self.store,
            groups=self.groups,
            lose_group=self.lose_group,
            event=self.event,
        )
        if start_over is not None:
            self.ledger = self._fresh_ledger()
            self.committed.clear()
            self.step = start_over
            self.last_checkpoint = 0  # starting over: checkpoint again from the first interval

    def run(self, *, hook: Hook | None = None, on_step: Callable[[StepMetrics], None] | None = None) -> RunResult:
        """Train until ``cfg.steps`` steps committed; ``hook(driver, step)`` runs before every attempt."""
        attempts = 0
        while self.step < self.cfg.steps and attempts < self.options.max_attempts:
            attempts += 1
            if hook is not None:
                hook(self, self.step)
            self._give_up_on_step_errors()
            self._give_up_on_checkpoints()
            self.leave_on_request()
            self.reconcile()
            self._poll_setup()
            self._fence_stalled()
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
                settled = self.leave_pause.committed(metrics.wall_time) if metrics.committed else None
                if settled is not None:
                    self.event("leave_settled", **settled)
                self.export_on_request(metrics.committed)
                if on_step is not None:
                    on_step(metrics)
        self.flush()
        self.save_final()
        return RunResult(
            metrics=self.metrics,
            ledger=self.ledger,
            step=self.step,
            events=self.events,
            groups=self.groups,
            committed=self.committed,
            export_path=self.export(),
        )

    def flush(self) -> None:
        """Wait for asynchronous checkpoint saves to finish and be marked; each marked one is an event."""
        for group_id, report in flush_groups(self.groups, timeout_seconds=self.options.step_timeout_seconds).items():
            record_saves(
                self.checkpoint_health, group=group_id, marked=report.marked, failures=report.failures, event=self.event
            )

    def save_final(self) -> None:
        """After the last step, checkpoint the trained state unless the newest checkpoint already holds it
        (a last scheduled save that failed is tried once more here)."""
        ready = sorted((g for g in self.groups.values() if g.ready), key=lambda g: g.group_id)
        good = self.checkpoint_health.last_good
        if self.store is None or self.step < self.cfg.steps or (good is not None and self.step <= good) or not ready:
            return
        plan = StepPlan(
            step=self.step,
            pieces=[],
            weight=0.0,
            participants=0,
            checkpoint=True,
            ledger_state=self.ledger.state_dict(),
            compression_strength=self.compression.strength if self.compression is not None else None,
        )
        report = save_final_checkpoint(ready[0], plan, timeout_seconds=self.options.step_timeout_seconds)
        if report is None:
            self.event("final_checkpoint_failed", group=ready[0].group_id)
            return
        record_saves(
            self.checkpoint_health,
            group=ready[0].group_id,
            marked=report.marked,
            failures=report.failures,
            event=self.event,
        )
        if report.marked is not None:
            self.last_checkpoint = report.marked

    def export_on_request(self, committed: bool) -> str | None:
        """At a step boundary, write ``<export_dir>/step-<N>`` for a pending request (once per id); its path."""
        request = decide_request_export(
            self.export_requests.pending(),
            served_requests(self.events),
            export_dir=self.options.export_dir,
            committed=committed,
            step=self.step,
            total_steps=self.cfg.steps,
        )
        ready = sorted(g.group_id for g in self.groups.values() if g.ready)
        if request is None or self.options.export_dir is None or not ready:
            return None
        return export_group(
            self.groups[ready[0]],
            self.options.export_dir,
            step=self.step,
            event=self.event,
            name=request_export_name(self.step),
            request=request,
        )

    def export(self) -> str | None:
        """With ``export_dir``, write the trained model there after the last step; its path (event ``exported``)."""
        if self.options.export_dir is None:
            return None
        group_id = decide_export_group(self.groups, step=self.step, total_steps=self.cfg.steps)
        if group_id is None:
            return None
        return export_group(self.groups[group_id], self.options.export_dir, step=self.step, event=self.event)

    def fingerprints(self) -> dict[str, list[dict[str, Any]]]:
        """Every ready group's per-rank state (parameters and optimizer shards)."""
        return fingerprint_groups(self.groups)

    def shutdown(self) -> None:
        shutdown_groups(self.groups)
        self.lighthouse.shutdown()
