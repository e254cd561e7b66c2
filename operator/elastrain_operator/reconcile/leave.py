"""Graceful leave on scale-down: worker pods are deleted only once the driver has let their groups go.

``decide`` deletes the workers beyond ``spec.replicas`` (a :class:`~.decide.DeletePod` with
``graceful``). Before the round applies that, :func:`decide_leave_gate` holds those deletions back
while the head's driver answers: the progress poll names the leaving pods' IPs (``GET /progress?leave=IP,IP``),
the driver removes their replica groups at its next step boundary and answers their IPs in the
report's ``left``; the next round deletes them. A head that does not answer the poll holds nothing up
(no driver, nothing to protect). A driver that does not let the groups go within
``spec.elastic.leaveTimeoutSeconds`` of the first ask (it is stuck, or older than this
contract) does not hold the scale-down up: the pods are deleted anyway, as a lost worker would be,
with a Warning Event ``LeaveTimedOut``. When the operator restarts, the bound starts again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from elastrain_operator.reconcile.observed import ObservedPod

#: Default of ``spec.elastic.leaveTimeoutSeconds``.
DEFAULT_LEAVE_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class LeaveMemory:
    """What the operator remembers of a job's scale-down between rounds (in memory: a restart starts over)."""

    since: dict[str, datetime] = field(default_factory=dict)
    """Pod name -> when its leave was first asked."""
    asked: tuple[str, ...] = ()
    """The IPs the last poll named (a poll naming none follows, so the driver forgets them)."""


@dataclass(frozen=True)
class LeaveGate:
    """This round's answer for the pods a scale-down deletes."""

    hold: frozenset[str] = frozenset()
    """Pods whose deletion waits for the driver this round."""
    timed_out: tuple[str, ...] = ()
    """Pods deleted without the driver's answer: the bound passed."""
    asked_since: dict[str, datetime] = field(default_factory=dict)
    """Pod name -> when its leave was first asked, for the pods still leaving (the next round's memory)."""


def leaving_ips(leavers: Collection[ObservedPod]) -> tuple[str, ...]:
    """The IPs the progress poll names as leaving (``?leave=``): every leaving pod that has one, sorted."""
    return tuple(sorted({p.ip for p in leavers if p.ip}))


def decide_leave_gate(
    leavers: Collection[ObservedPod],
    *,
    head_answers: bool,
    left: Collection[str],
    asked_since: Mapping[str, datetime],
    now: datetime,
    timeout_seconds: int,
) -> LeaveGate:
    """Which of the scale-down's pods to delete now and which to hold for the driver.

    ``left``: the IPs the driver acknowledged (the progress report's ``left``, empty without a report).
    A pod without an IP (not running yet) has no group: it goes at once, as does every pod when the
    head did not answer this round's poll (not running, no driver yet: no training to protect).
    """
    hold: set[str] = set()
    timed_out: list[str] = []
    since: dict[str, datetime] = {}
    for pod in leavers:
        if not head_answers or not pod.ip or pod.ip in left:
            continue
        first = asked_since.get(pod.name, now)
        if now >= first + timedelta(seconds=timeout_seconds):
            timed_out.append(pod.name)
            continue
        hold.add(pod.name)
        since[pod.name] = first
    return LeaveGate(hold=frozenset(hold), timed_out=tuple(timed_out), asked_since=since)


def leave_timed_out_message(pods: Collection[str], timeout_seconds: int) -> str:
    """The Warning Event when the driver did not let the leaving pods' groups go in time."""
    return (
        f"the driver did not confirm within spec.elastic.leaveTimeoutSeconds ({timeout_seconds} s) that the groups "
        f"of {', '.join(sorted(pods))} left; deleted anyway (the others may pause until the lighthouse drops them)"
    )
