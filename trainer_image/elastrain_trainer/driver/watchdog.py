"""The step watchdog: when a replica group's step is hung, judged by the other groups' pace.

A hung group (a collective that never returns, a process frozen, a host wedged in the kernel) keeps
its pod Running and, in a real NCCL hang, its heartbeat thread alive; so it is judged by progress,
never by heartbeats. A step may take ``max(factor x the median of the other groups' recent step
times, floor_seconds)``; before ``warmup_steps`` committed steps (nothing to compare yet, the first
steps warm up) it may take ``startup_seconds``, and so may the first step of a group that just joined.

Every member's cross-group collective of a step times out at the loosest member bound too (the driver
passes it in the step's plan, :func:`compute_collective_timeout`), so when one member hangs the others' reduction
errors out through torchft's error path (the step is not committed, its samples go back to the
ledger) and they answer. A member still without an answer past its bound while another member of the
step has answered is hung (:func:`decide_hung`): the driver fences it (kills its ranks) and the others
form the next quorum without it. When no member has answered the wait goes on: either the others'
collective timeout answers them, or every group is stuck and the step timeout applies as before.

A group hung between steps (its ``quorum`` call never answers) is left out of the quorum by the others;
once a step committed without it after it asked, and its call is older than its bound, it is hung too
(:func:`decide_stalled`).
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HangPolicy:
    """How long a group's step may take before it is hung (``spec.faultTolerance``)."""

    factor: float = 10.0
    """A step is hung past this many times the median step time of the other groups."""
    floor_seconds: float = 10.0
    """...but never before this many seconds."""
    startup_seconds: float = 60.0
    """The bound before ``warmup_steps`` committed steps."""
    warmup_steps: int = 20
    """Committed steps (of this driver) after which the bound follows the measured step times."""
    window: int = 20
    """Recent committed steps per group the median is taken over."""


@dataclass
class StepTimes:
    """Recent step seconds of each group's committed steps (the watchdog's measure of the job's pace)."""

    window: int = 20
    committed_steps: int = 0
    """Committed steps recorded (by this driver)."""
    _times: dict[str, deque[float]] = field(default_factory=dict)

    def record(self, seconds: Mapping[str, float]) -> None:
        """One committed step: each member's step seconds (its slowest rank's)."""
        self.committed_steps += 1
        for group_id, value in seconds.items():
            self._times.setdefault(group_id, deque(maxlen=self.window)).append(value)

    def forget(self, group_id: str) -> None:
        """A group is gone: its times no longer set anyone's pace."""
        self._times.pop(group_id, None)

    def by_group(self) -> dict[str, list[float]]:
        return {group_id: list(times) for group_id, times in self._times.items()}


def compute_hang_bound(others: Iterable[float], *, committed_steps: int, policy: HangPolicy) -> float:
    """Seconds a step may take, given the other groups' recent step times."""
    times = list(others)
    if committed_steps < policy.warmup_steps or not times:
        return max(policy.startup_seconds, policy.floor_seconds)
    return max(policy.factor * statistics.median(times), policy.floor_seconds)


def compute_hang_bounds(
    members: Collection[str],
    times: Mapping[str, list[float]],
    *,
    committed_steps: int,
    policy: HangPolicy,
    slow: Collection[str] = (),
) -> dict[str, float]:
    """Each member's bound from the other groups' times (its own when it trains alone).

    A member that has not committed a step yet (a group that just joined: its first step may warm up),
    or one in ``slow`` (it saves a checkpoint in this step), gets the start-up bound.
    """
    bounds: dict[str, float] = {}
    for group_id in members:
        others = [t for other, ts in times.items() if other != group_id for t in ts]
        known = committed_steps if group_id in times and group_id not in slow else 0
        bounds[group_id] = compute_hang_bound(others or times.get(group_id, []), committed_steps=known, policy=policy)
    return bounds


def compute_collective_timeout(bounds: Mapping[str, float], *, configured_seconds: float) -> float:
    """The step's cross-group collective timeout: the loosest member bound (the collective waits for the
    slowest member, which may take that long), never past the configured one."""
    return min(configured_seconds, max(bounds.values(), default=configured_seconds))


#: How the reason of a group lost by the watchdog begins (``group_lost`` events, :class:`Hung`).
HUNG_REASON = "hung"


@dataclass(frozen=True)
class Hung:
    """A member of the step judged hung: fence it."""

    group_id: str
    waited_seconds: float
    bound_seconds: float

    phase: str = "train"
    """The call that hung: ``train`` (its step) or ``quorum`` (between steps)."""

    def describe(self) -> str:
        answer = "step result" if self.phase == "train" else "quorum answer"
        return (
            f"{HUNG_REASON}: no {answer} after {self.waited_seconds:.1f} s while the others went on "
            f"(watchdog bound {self.bound_seconds:.1f} s)"
        )


def decide_hung(
    waited_seconds: float,
    *,
    pending: Collection[str],
    members: Collection[str],
    bounds: Mapping[str, float],
) -> list[Hung]:
    """The step's members to fence, ``waited_seconds`` after the step started.

    ``pending``: members still without an answer (a member lost meanwhile is neither pending nor
    answered: it moved on too). A pending member is hung past its bound when another member of the
    step is no longer pending, or when it trains alone; while every member is pending nobody is.
    """
    others_moved_on = len(pending) < len(members)
    alone = len(members) == 1
    return [
        Hung(group_id, waited_seconds, bounds[group_id])
        for group_id in sorted(pending)
        if group_id in bounds and waited_seconds > bounds[group_id] and (others_moved_on or alone)
    ]


def decide_stalled(
    called_at: Mapping[str, float], *, now: float, last_commit_at: float | None, bounds: Mapping[str, float]
) -> list[Hung]:
    """Groups whose ``quorum`` call (made at ``called_at``, monotonic seconds) is hung.

    Hung when older than its bound and a step committed without the group after it asked (a group that
    asked just after a quorum formed is in the next one; one that is healing holds the step up instead).
    """
    return [
        Hung(group_id, now - at, bounds[group_id], phase="quorum")
        for group_id, at in sorted(called_at.items())
        if group_id in bounds and last_commit_at is not None and last_commit_at > at and now - at > bounds[group_id]
    ]
