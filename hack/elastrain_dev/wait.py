"""Polling with a deadline, for tests and tools that wait on the cluster."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeoutError(AssertionError):
    """A condition did not hold in time; the message says what was awaited and the last value seen."""


def until(probe: Callable[[], T | None], *, what: str, timeout: float = 60.0, interval: float = 0.5) -> T:
    """Call ``probe`` until it returns a truthy value, and return that value.

    Raises :class:`WaitTimeoutError` naming ``what`` and the last value after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; last value: {last!r}")
        time.sleep(interval)
