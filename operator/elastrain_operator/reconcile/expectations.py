"""Expectations: what a job's last round wrote that the watch-fed cache has not shown yet.

The Go controllers' ``ControllerExpectations``, by object name: a round that creates pods (or the
Service, or the NetworkPolicy) or deletes pods records them here; the cache's watch events check
them off. Until every expectation of a job is met (or has waited longer than its TTL: an event
that never comes must not freeze a job), its rounds do not act, so a round never decides from a
cache older than its own writes. Thread-safe: watch threads observe, round threads expect and ask.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

#: An expectation older than this (seconds) counts as met: the safety net if a watch event is lost.
DEFAULT_TTL_SECONDS = 60.0

JobKey = tuple[str, str]
"""(namespace, job name)."""
ObjectKey = tuple[str, str]
"""(kind, object name), e.g. ("Pod", "job-worker-3-a1")."""


@dataclass
class _Pending:
    creations: set[ObjectKey] = field(default_factory=set)
    deletions: set[ObjectKey] = field(default_factory=set)
    since: float = 0.0


class Expectations:
    """Per job: the objects it created or deleted that the cache has not seen created or deleted yet."""

    def __init__(self, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        self._ttl = ttl_seconds
        self._pending: dict[JobKey, _Pending] = {}
        self._lock = threading.Condition()

    def expect(
        self,
        job: JobKey,
        *,
        creations: set[ObjectKey] | frozenset[ObjectKey] = frozenset(),
        deletions: set[ObjectKey] | frozenset[ObjectKey] = frozenset(),
        now: float,
    ) -> None:
        """Record writes a round just made (``now``: a monotonic clock)."""
        if not creations and not deletions:
            return
        with self._lock:
            pending = self._pending.setdefault(job, _Pending())
            pending.creations |= creations
            pending.deletions |= deletions
            pending.since = now

    def observed_present(self, job: JobKey, obj: ObjectKey) -> None:
        """The cache now holds ``obj``: a creation expected of it is met."""
        self._drop(job, obj, creation=True)

    def observed_gone(self, job: JobKey, obj: ObjectKey) -> None:
        """The cache saw ``obj`` deleted or marked for deletion: a deletion expected of it is met."""
        self._drop(job, obj, creation=False)

    def _drop(self, job: JobKey, obj: ObjectKey, *, creation: bool) -> None:
        with self._lock:
            pending = self._pending.get(job)
            if pending is None:
                return
            (pending.creations if creation else pending.deletions).discard(obj)
            if not pending.creations and not pending.deletions:
                del self._pending[job]
                self._lock.notify_all()

    def wait(self, job: JobKey, timeout: float) -> bool:
        """Block until the job's expectations are met (True) or ``timeout`` seconds passed (False)."""
        with self._lock:
            return self._lock.wait_for(lambda: job not in self._pending, timeout)

    def satisfied(self, job: JobKey, *, now: float) -> bool:
        """True when the cache reflects every write the job's rounds made (or they have expired)."""
        with self._lock:
            pending = self._pending.get(job)
            if pending is None:
                return True
            if now - pending.since > self._ttl:
                del self._pending[job]
                return True
            return False

    def pending(self, job: JobKey) -> tuple[frozenset[ObjectKey], frozenset[ObjectKey]]:
        """(creations, deletions) still awaited for ``job``: for logs and tests."""
        with self._lock:
            pending = self._pending.get(job)
            if pending is None:
                return frozenset(), frozenset()
            return frozenset(pending.creations), frozenset(pending.deletions)

    def forget(self, job: JobKey) -> None:
        """The job is gone: drop what it waited for."""
        with self._lock:
            self._pending.pop(job, None)
            self._lock.notify_all()
