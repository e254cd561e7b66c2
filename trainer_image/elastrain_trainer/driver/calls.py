"""Ray calls on the groups' ranks: collect answers without blocking, set-up, flush, fingerprints, shutdown.

A step phase is one call per group, on its leader, which hands it to the group's other ranks; the
driver learns of a lost follower from its pending ``follow`` call. A failed rank loses its whole
group at once: its other ranks are killed, so their torchft Manager stops heartbeating and the
quorum moves on without it. The callbacks the driver hands to these
functions and to the phases are typed here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from elastrain_trainer.driver.groups import GroupHandle
from elastrain_trainer.group import SaveReport, StepPlan

#: Seconds a failed group's other calls get to report a rank's death (see :func:`lose_failed_group`).
FAILURE_GRACE_SECONDS = 2.0

#: Longest single wait of a phase between looks at its deadline.
MAX_WAIT_SECONDS = 1.0


class EventSink(Protocol):
    """Records one driver event (``Driver.event``)."""

    def __call__(self, kind: str, **data: Any) -> None: ...


class LoseGroup(Protocol):
    """Kills a group and gives back its pieces (``Driver.lose_group``)."""

    def __call__(self, group_id: str, *, reason: str, error: BaseException | None = None) -> None:
        """``error``: what a step call (quorum or train) raised, counted towards the crash-loop limit."""


def collect(group: GroupHandle, refs: list[Any], phase: str, *, lose_group: LoseGroup) -> list[Any] | None:
    """The answers to ``refs`` (calls on the group's leader) once all are in; None while waiting.

    A failed rank loses its group at once: a call that failed, or a follower's ``follow`` call that
    ended (it only ends by itself when the follower failed or lost its leader).
    """
    ended, _ = ray.wait(group.follow_refs, num_returns=1, timeout=0) if group.follow_refs else ([], [])
    done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
    if not ended and len(done) < len(refs):
        return None
    if not ended:
        try:
            return list(ray.get(refs))
        except (RayTaskError, RayActorError):
            pass
    lose_failed_group(group, [*refs, *group.follow_refs], phase, lose_group=lose_group)
    return None


def lose_failed_group(group: GroupHandle, refs: list[Any], phase: str, *, lose_group: LoseGroup) -> None:
    """One of the group's calls failed: lose the group, saying why.

    A rank that died fails the other ranks' collectives a moment before Ray reports its death, so
    the calls get up to :data:`FAILURE_GRACE_SECONDS` to report: a death among them is the cause
    (not counted as an error); else the error the trainer's own code raised is (counted by the driver).
    """
    done, _ = ray.wait(refs, num_returns=len(refs), timeout=FAILURE_GRACE_SECONDS)
    errors: list[RayTaskError] = []
    stopped: list[str] = []
    for ref in done:
        try:
            value = ray.get(ref)
        except RayActorError as error:
            lose_group(group.group_id, reason=f"{phase} failed: {type(error).__name__} (the rank process died)")
            return
        except RayTaskError as error:
            errors.append(error)
        else:
            if isinstance(value, str):  # a follower's follow call ended by itself: why
                stopped.append(value)
    if errors:
        lose_group(group.group_id, reason=f"{phase} failed: {describe_cause(errors[0])}", error=errors[0])
    else:
        lose_group(group.group_id, reason=f"{phase} failed: {stopped[0] if stopped else 'a rank stopped answering'}")


def wait_for_any(groups: Iterable[GroupHandle], pending: Iterable[Any], *, timeout_seconds: float) -> None:
    """Block until one of ``pending`` (not yet done) or a follower's ``follow`` call ends, or the timeout.

    What the driver's phases wait in between looking at their calls: no polling loop on the critical path.
    """
    refs = [*pending, *(ref for group in groups for ref in group.follow_refs)]
    timeout = min(max(0.0, timeout_seconds), MAX_WAIT_SECONDS)
    if refs:
        ray.wait(refs, num_returns=1, timeout=timeout)
    else:
        time.sleep(timeout)


def pending_setup(groups: Iterable[GroupHandle]) -> list[Any]:
    """The set-up calls still running on groups not yet ready (a group ready meanwhile joins the quorum)."""
    refs: list[Any] = []
    for group in groups:
        if not group.ready:
            _, running = ray.wait(group.setup_refs, num_returns=len(group.setup_refs), timeout=0)
            refs += running
    return refs


def poll_setup(groups: Mapping[str, GroupHandle], *, lose_group: LoseGroup, event: EventSink) -> list[str]:
    """Mark every group whose ranks all finished set-up ready; a group whose set-up failed is lost.

    Returns what set-up raised, one line per group that failed that way (``group3: KeyError: 'x'``):
    an error of the trainer's own, unlike a rank process that died (its node lost, a signal).
    """
    errors: list[str] = []
    for group_id, group in list(groups.items()):
        if group.ready:
            continue
        done, _ = ray.wait(group.setup_refs, num_returns=len(group.setup_refs), timeout=0)
        if len(done) < len(group.setup_refs):
            continue
        try:
            steps = ray.get(group.setup_refs)
        except RayTaskError as error:
            cause = describe_cause(error)
            lose_group(group_id, reason=f"set-up failed: {cause}")
            errors.append(f"{group_id}: {cause}")
            continue
        except RayActorError as error:
            lose_group(group_id, reason=f"set-up failed: {error}")
            continue
        group.ready = True
        group.step_at_ready = max(steps)
        group.info["setup_seconds"] = time.monotonic() - group.started_at
        event("group_ready", group=group_id, setup_seconds=group.info["setup_seconds"])
    return errors


def describe_cause(error: BaseException) -> str:
    """``Type: message`` of the exception a Ray task raised (first line only; the traceback is in the log).

    A DCP ``CheckpointException`` only lists the ranks that failed: the first rank's own exception
    is what names the problem (e.g. a size mismatch with a checkpoint of another model).
    """
    cause: BaseException = getattr(error, "cause", None) or error
    failures = getattr(cause, "failures", None)
    if isinstance(failures, dict) and failures:
        first = next(iter(failures.values()))
        inner = first[0] if isinstance(first, tuple) and first else first
        if isinstance(inner, BaseException):
            cause = inner
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _group_report(reports: list[SaveReport]) -> SaveReport:
    """One group's report from its ranks' (rank 0's marked step; rank 0's failures, which name the cause)."""
    failures = next((r.failures for r in reports if r.failures), ())
    return SaveReport(marked=reports[0].marked if reports else None, failures=failures)


def flush_groups(groups: Mapping[str, GroupHandle], *, timeout_seconds: float) -> dict[str, SaveReport]:
    """Wait for the ready groups' asynchronous checkpoint saves to finish and be marked (or fail).

    Returns, per group, the step of the save this marked latest and the saves abandoned (groups whose
    ranks did not answer left out).
    """
    ready = [g for g in groups.values() if g.ready]
    for group in ready:
        group.release()
    refs = [[actor.flush.remote() for actor in g.actors] for g in ready]
    reports: dict[str, SaveReport] = {}
    for group, group_refs in zip(ready, refs, strict=True):
        with contextlib.suppress(RayActorError, RayTaskError, GetTimeoutError):
            reports[group.group_id] = _group_report(ray.get(group_refs, timeout=timeout_seconds))
    return reports


def save_final_checkpoint(group: GroupHandle, plan: StepPlan, *, timeout_seconds: float) -> SaveReport | None:
    """Have every rank of ``group`` save the trained state; the step marked latest or why not, None if the
    ranks did not answer."""
    group.release()
    try:
        reports = ray.get([actor.save_final.remote(plan) for actor in group.actors], timeout=timeout_seconds)
    except (RayActorError, RayTaskError, GetTimeoutError):
        return None
    return _group_report(reports)


def fingerprint_groups(groups: Mapping[str, GroupHandle]) -> dict[str, list[dict[str, Any]]]:
    """Every ready group's per-rank state (parameters and optimizer shards)."""
    for group in groups.values():
        group.release()
    return {g.group_id: ray.get([a.state_fingerprint.remote() for a in g.actors]) for g in groups.values() if g.ready}


def shutdown_groups(groups: dict[str, GroupHandle]) -> None:
    """Shut every group's ranks down (a dead rank is fine), kill them and forget the groups."""
    for group in list(groups.values()):
        with contextlib.suppress(Exception):  # shutting down: a dead rank is fine
            group.release()
            ray.get([a.shutdown.remote() for a in group.actors], timeout=10)
        group.kill()
    groups.clear()
