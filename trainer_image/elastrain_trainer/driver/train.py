"""Phase 2 of a step, ``train``: plan the quorum's shares, train them, settle the step's samples.

The ledger hands the quorum's groups their shares of the global batch (proportional to measured
throughput); the step commits or not as torchft decides, and the ledger records or takes back the
step's samples.

Exactly once, across losses: a step's samples are settled by the step's outcome as a whole, those
of quorum members lost during its ``train`` phase included. If any surviving member commits, the
cross-group all-reduce completed, and a completed all-reduce holds every member's gradient (one
that died before contributing fails it for everyone), so the lost members' pieces were trained by
that step: the ledger and ``Driver.committed`` record them with it. If nobody commits, every
piece goes back. A group lost outside a step (in the quorum phase, or its node gone) gives its
pieces back at once.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from elastrain_trainer.balance import BalancePlan, plan_step, update_throughput
from elastrain_trainer.compression import Strength
from elastrain_trainer.driver.calls import EventSink, LoseGroup, collect, wait_for_any
from elastrain_trainer.driver.checkpoint_health import CheckpointHealth, first_failure, record_saves
from elastrain_trainer.driver.groups import GroupHandle
from elastrain_trainer.driver.options import DriverOptions, ExitAfterReduce, StopInStep
from elastrain_trainer.driver.watchdog import compute_collective_timeout, decide_hung
from elastrain_trainer.group import QuorumInfo, StepPlan, StepResult
from elastrain_trainer.ledger import Piece, ShardLedger


def decide_checkpoint_group(
    members: Collection[str], *, step: int, interval: int, last_checkpoint: int, enabled: bool
) -> str | None:
    """The member that saves a durable checkpoint after ``step`` (the first by name); None when none is due."""
    if enabled and interval and step > 0 and step % interval == 0 and step > last_checkpoint:
        return sorted(members)[0]
    return None


def plan_train(
    members: Collection[str],
    *,
    step: int,
    groups: Mapping[str, GroupHandle],
    throughput: Mapping[str, float | None],
    ledger: ShardLedger,
    global_batch_size: int,
    checkpoint_group: str | None,
    options: DriverOptions,
    strength: Strength | None,
    quorum_after: bool = False,
    collective_timeout: float | None = None,
) -> tuple[BalancePlan, dict[str, StepPlan]]:
    """The members' shares (by measured throughput), assigned in the ledger, and one StepPlan per member.

    ``quorum_after``: the members form the next step's quorum right after this one (pipelined control).
    ``collective_timeout``: the step's cross-group collective timeout (the step watchdog's; None: configured).
    """
    ranks = {g: len(groups[g].actors) for g in members}
    plan = plan_step(global_batch_size, {g: throughput.get(g) for g in members}, min_share=max(ranks.values()))
    ledger_state = ledger.state_dict() if checkpoint_group else None
    assignment = ledger.assign(step, plan.shares)
    fault = options.exit_after_reduce
    raising = options.raise_in_step
    plans = {
        group_id: StepPlan(
            step=step,
            pieces=assignment[group_id],
            weight=plan.weights[group_id],
            participants=len(members),
            checkpoint=group_id == checkpoint_group,
            ledger_state=ledger_state if group_id == checkpoint_group else None,
            delay_seconds=options.step_delay + options.group_delays.get(groups[group_id].node_id, 0.0),
            compression_strength=strength,
            exit_after_reduce=fault == ExitAfterReduce(group_id, step),
            raise_in_step=raising is not None and raising.applies(node_id=groups[group_id].node_id, step=step),
            stop_in_step=options.stop_in_step == StopInStep(group_id, step),
            collective_timeout_seconds=collective_timeout,
            quorum_after=quorum_after,
        )
        for group_id in members
    }
    return plan, plans


def start_training(plans: Mapping[str, StepPlan], groups: Mapping[str, GroupHandle]) -> dict[str, list[Any]]:
    """Every member's leader starts its ranks training the group's plan (one call per group, not waited for)."""
    refs: dict[str, list[Any]] = {}
    for group_id, plan in plans.items():
        group = groups[group_id]
        group.ensure_following()
        refs[group_id] = [group.leader.lead_train.remote(plan)]
    return refs


def await_results(
    refs: dict[str, list[Any]],
    *,
    groups: Mapping[str, GroupHandle],
    timeout_seconds: float,
    lose_group: LoseGroup,
    event: EventSink,
    hang_bounds: Mapping[str, float] | None = None,
) -> dict[str, list[StepResult]]:
    """Every group's step results; a group that fails, hangs or times out is lost (and has none).

    ``groups`` is the driver's live mapping: a group lost meanwhile leaves it. ``refs`` is consumed.
    ``hang_bounds``: each member's step watchdog bound (:func:`~.watchdog.decide_hung`); a hung member is
    fenced (event ``group_hung``, then lost: its ranks killed) so the others go on without it.
    """
    results: dict[str, list[StepResult]] = {}
    started = time.monotonic()
    deadline = started + timeout_seconds
    members = set(refs)
    while refs:
        for group_id, group_refs in list(refs.items()):
            handle = groups.get(group_id)
            answers = collect(handle, group_refs, "train", lose_group=lose_group) if handle is not None else None
            if answers is not None:
                results[group_id] = answers[0]  # every rank's result, from the leader
            if answers is not None or group_id not in groups:
                del refs[group_id]
        if refs and hang_bounds:
            fence_hung(
                refs,
                nodes={g: groups[g].node_id for g in refs if g in groups},
                members=members,
                bounds=hang_bounds,
                waited=time.monotonic() - started,
                lose_group=lose_group,
                event=event,
            )
        if refs and time.monotonic() > deadline:
            event("train_timeout", waiting=sorted(refs))
            for group_id in list(refs):
                lose_group(group_id, reason="train timed out")
            break
        if refs:
            live = [groups[g] for g in refs if g in groups]
            pending = [r for g in refs for r in refs[g]]
            wait_for_any(live, pending, timeout_seconds=deadline - time.monotonic())
    return results


def fence_hung(
    refs: dict[str, list[Any]],
    *,
    nodes: Mapping[str, str],
    members: Collection[str],
    bounds: Mapping[str, float],
    waited: float,
    lose_group: LoseGroup,
    event: EventSink,
) -> None:
    """Fence the members the step watchdog judges hung: event ``group_hung``, then lose them (kill their ranks).

    Their pieces settle with the step; their calls leave ``refs``.
    """
    for hung in decide_hung(waited, pending=set(refs), members=members, bounds=bounds):
        event(
            "group_hung",
            group=hung.group_id,
            node=nodes.get(hung.group_id),
            waited_seconds=hung.waited_seconds,
            bound_seconds=hung.bound_seconds,
        )
        lose_group(hung.group_id, reason=hung.describe())
        del refs[hung.group_id]


@dataclass(frozen=True)
class TrainOutcome:
    """What one ``train`` phase did: the samples are settled, the driver takes on the rest."""

    step: int
    committed: bool
    shares: dict[str, int]
    """The global batch's share of every member (by measured throughput)."""
    results: dict[str, list[StepResult]]
    """Every rank's result, by group; a group lost during the phase has none."""
    strength: Strength | None
    """The compression strength the step was trained at."""
    ahead: dict[str, QuorumInfo] = field(default_factory=dict)
    """The next step's quorum as each member formed it right after the step (rank 0's view; pipelined control)."""


def train_step(
    members: Collection[str],
    *,
    step: int,
    checkpoint_group: str | None,
    global_batch_size: int,
    options: DriverOptions,
    groups: dict[str, GroupHandle],
    ledger: ShardLedger,
    committed_log: list[dict[str, list[Piece]]],
    throughput: Mapping[str, float | None],
    strength: Strength | None,
    lose_group: LoseGroup,
    event: EventSink,
    quorum_after: bool = False,
    hang_bounds: Mapping[str, float] | None = None,
) -> TrainOutcome:
    """Plan the members' shares, train them, and settle the step's samples as a whole.

    ``groups`` is the driver's live mapping; a group lost during the phase (through ``lose_group``)
    leaves it and settles with the step. ``hang_bounds``: the step watchdog's bound per member (None: off);
    the step's collective timeout follows them.
    """
    collective_timeout = (
        compute_collective_timeout(hang_bounds, configured_seconds=options.timeouts.collective_seconds)
        if hang_bounds
        else None
    )
    balance, plans = plan_train(
        members,
        step=step,
        groups=groups,
        throughput=throughput,
        ledger=ledger,
        global_batch_size=global_batch_size,
        checkpoint_group=checkpoint_group,
        options=options,
        strength=strength,
        quorum_after=quorum_after,
        collective_timeout=collective_timeout,
    )
    refs = start_training(plans, groups)
    results = await_results(
        refs,
        groups=groups,
        timeout_seconds=options.step_timeout_seconds,
        lose_group=lose_group,
        event=event,
        hang_bounds=hang_bounds,
    )
    committed = settle_step(ledger, committed_log, step=step, results=results)
    ahead = {g: rs[0].next_quorum for g, rs in results.items() if rs and rs[0].next_quorum is not None}
    return TrainOutcome(
        step=step, committed=committed, shares=balance.shares, results=results, strength=strength, ahead=ahead
    )


def settle_step(
    ledger: ShardLedger,
    committed_log: list[dict[str, list[Piece]]],
    *,
    step: int,
    results: Mapping[str, list[StepResult]],
) -> bool:
    """Commit the step's samples if any member committed, else give them all back; whether it committed.

    A committed step's pieces (those of members lost during it included) are appended to
    ``committed_log``, after dropping the entries from ``step`` on (work after a restored checkpoint
    is redone).
    """
    committed = any(r[0].committed for r in results.values())
    if committed:
        settled = ledger.in_flight(step)  # every member's pieces, those of lost members included
        ledger.commit(step)
        del committed_log[step:]
        committed_log.append(settled)
    else:
        ledger.give_back(step)
    return committed


def record_group_results(
    outcome: TrainOutcome, *, throughput: dict[str, float | None], checkpoints: CheckpointHealth, event: EventSink
) -> None:
    """Update each group's measured throughput (committed steps only) and record the checkpoints saved or failed."""
    for group_id, group_results in outcome.results.items():
        compute = max(r.compute_seconds for r in group_results)
        if outcome.committed:
            throughput[group_id] = update_throughput(throughput.get(group_id), outcome.shares[group_id], compute)
        saved = [r.checkpoint_saved for r in group_results if r.checkpoint_saved is not None]
        failures = first_failure(r.checkpoint_failures for r in group_results)
        record_saves(checkpoints, group=group_id, marked=saved[0] if saved else None, failures=failures, event=event)
