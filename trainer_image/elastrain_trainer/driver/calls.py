"""Ray calls on the groups' ranks: collect answers without blocking, set-up, flush, fingerprints, shutdown.

A failed rank loses its whole group at once: its other ranks are killed, so their torchft Manager
stops heartbeating and the quorum moves on without it. The callbacks the driver hands to these
functions and to the phases are typed here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any, Protocol

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from elastrain_trainer.driver.groups import GroupHandle
from elastrain_trainer.group import SaveReport, StepPlan


class EventSink(Protocol):
    """Records one driver event (``Driver.event``)."""

    def __call__(self, kind: str, **data: Any) -> None: ...


class LoseGroup(Protocol):
    """Kills a group and gives back its pieces (``Driver.lose_group``)."""

    def __call__(self, group_id: str, *, reason: str, error: BaseException | None = None) -> None:
        """``error``: what a step call (quorum or train) raised, counted towards the crash-loop limit."""


def collect(group: GroupHandle, refs: list[Any], phase: str, *, lose_group: LoseGroup) -> list[Any] | None:
    """The ranks' answers once all are in; None while waiting. A failed rank loses its group at once."""
    done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
    for ref in done:
        try:
            ray.get(ref)
        except RayTaskError as error:
            # The trainer's own code raised: an error that may come back every time (counted by the driver).
            lose_group(group.group_id, reason=f"{phase} failed: {describe_cause(error)}", error=error)
            return None
        except RayActorError as error:
            lose_group(group.group_id, reason=f"{phase} failed: {type(error).__name__} (the rank process died)")
            return None
    if len(done) < len(refs):
        return None
    return list(ray.get(refs))


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
    refs = [[actor.flush.remote() for actor in g.actors] for g in ready]
    reports: dict[str, SaveReport] = {}
    for group, group_refs in zip(ready, refs, strict=True):
        with contextlib.suppress(RayActorError, RayTaskError, GetTimeoutError):
            reports[group.group_id] = _group_report(ray.get(group_refs, timeout=timeout_seconds))
    return reports


def save_final_checkpoint(group: GroupHandle, plan: StepPlan, *, timeout_seconds: float) -> SaveReport | None:
    """Have every rank of ``group`` save the trained state; the step marked latest or why not, None if the
    ranks did not answer."""
    try:
        reports = ray.get([actor.save_final.remote(plan) for actor in group.actors], timeout=timeout_seconds)
    except (RayActorError, RayTaskError, GetTimeoutError):
        return None
    return _group_report(reports)


def fingerprint_groups(groups: Mapping[str, GroupHandle]) -> dict[str, list[dict[str, Any]]]:
    """Every ready group's per-rank state (parameters and optimizer shards)."""
    return {g.group_id: ray.get([a.state_fingerprint.remote() for a in g.actors]) for g in groups.values() if g.ready}


def shutdown_groups(groups: dict[str, GroupHandle]) -> None:
    """Shut every group's ranks down (a dead rank is fine), kill them and forget the groups."""
    for group in list(groups.values()):
        with contextlib.suppress(Exception):  # shutting down: a dead rank is fine
            ray.get([a.shutdown.remote() for a in group.actors], timeout=10)
        group.kill()
    groups.clear()
