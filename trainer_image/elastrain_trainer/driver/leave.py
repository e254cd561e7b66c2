"""Graceful leave: worker pods the operator is about to delete leave at a step boundary, not mid-step.

On a scale-down the operator names the leaving pods' addresses on its progress poll
(``GET /progress?leave=IP,IP``); the head's progress server puts them into a :class:`LeaveRequests`
mailbox (the newest poll's set wins: a poll naming none clears it). At the next step boundary the
driver removes the groups on those addresses (:func:`decide_leave`, a pure choice): nothing of theirs
is in flight then, so the ledger has settled their samples, and the next quorum forms without them
instead of waiting out a timeout for a group killed mid-step. Each removal is a ``group_left``
event; the next committed step is a ``leave_settled`` event with the survivors' pause
(:class:`LeavePause`). The driver then acknowledges the addresses (``left`` in the progress report),
and only then does the operator delete the pods. A node whose group left is never given a group
again (its Ray node id is remembered until it is gone), so the pod's last seconds cost nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class LeaveRequests:
    """The addresses the operator's newest poll names as leaving, and those the driver has let go.

    Written by the progress server's thread (:meth:`ask`) and the driver loop (:meth:`done`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asked: frozenset[str] = frozenset()
        self._done: frozenset[str] = frozenset()

    def ask(self, addresses: Iterable[str]) -> None:
        """The poll's set of leaving addresses replaces the last one; acknowledgements of others are dropped."""
        asked = frozenset(a for a in addresses if a)
        with self._lock:
            self._asked = asked
            self._done = self._done & asked

    def asked(self) -> frozenset[str]:
        with self._lock:
            return self._asked

    def done(self, addresses: Iterable[str]) -> None:
        """The driver has no group on these addresses any more (and starts none there)."""
        with self._lock:
            self._done = (self._done | frozenset(addresses)) & self._asked

    def acknowledged(self) -> list[str]:
        """The asked addresses whose groups are gone, sorted (the progress report's ``left``)."""
        with self._lock:
            return sorted(self._done)


@dataclass(frozen=True)
class LeaveDecision:
    """What to do at this step boundary for the leaving addresses."""

    remove: tuple[str, ...] = ()
    """Groups to remove now (their address is leaving), in order."""
    done: frozenset[str] = frozenset()
    """Asked addresses that hold no group once ``remove`` is done: the driver acknowledges them."""


def decide_leave(asked: frozenset[str], group_addresses: Mapping[str, str]) -> LeaveDecision:
    """Which groups leave now: every group whose pod address was asked to leave.

    ``group_addresses``: group id -> the address of the pod it runs on. Called only between steps
    (nothing in flight), so a removal needs no settling. Every asked address is acknowledged once
    no group runs there: one that never had a group (its Ray node not joined yet) at once.
    """
    remove = tuple(sorted(g for g, address in group_addresses.items() if address in asked))
    return LeaveDecision(remove=remove, done=asked)


def leaving_nodes(asked: frozenset[str], node_addresses: Mapping[str, str]) -> set[str]:
    """The Ray node ids at the asked addresses: no group is started on them any more."""
    return {node_id for node_id, address in node_addresses.items() if address in asked}


@dataclass
class LeavePause:
    """The survivors' pause across a leave: from the last committed step before it to the first after it.

    The driver notes a leave (:meth:`left`) and each committed step (:meth:`committed`); the first
    commit after a leave gives the ``leave_settled`` event's data (``pause_seconds``), once.
    """

    last_commit: float | None = None
    """Wall time (driver clock) of the newest committed step."""
    pending: list[str] | None = None
    """Groups that left since the newest commit."""

    def left(self, groups: Iterable[str]) -> None:
        self.pending = [*(self.pending or []), *groups]

    def committed(self, wall_time: float) -> dict[str, object] | None:
        """The ``leave_settled`` event's data when this commit is the first after a leave, else None."""
        settled = None
        if self.pending and self.last_commit is not None:
            settled = {"groups": self.pending, "pause_seconds": round(wall_time - self.last_commit, 3)}
        self.last_commit, self.pending = wall_time, None
        return settled
