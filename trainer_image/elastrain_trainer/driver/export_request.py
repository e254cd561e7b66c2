"""Exports asked for while training runs: the mailbox the head fills and the driver's choice of when to serve.

The operator names a pending request id on its progress poll (``GET /progress?exportRequest=ID``, from
the job's ``elastrain.dev/export-request`` annotation); the head's progress server puts it into an
:class:`ExportRequests`; the driver takes it at the next step boundary (:func:`decide_request_export`,
a pure choice) and has one ready group write ``<export location>/step-<N>`` with the same writer and
atomic rename as ``final``. The outcome is a driver event (``request_exported`` /
``request_export_failed``), which the head reports back in the progress report. Each id is served
once: asking again with an id already served does nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from elastrain_trainer.config.progress import valid_request_id


def request_export_name(step: int) -> str:
    """The directory name, under the export location, of an export asked for at ``step``."""
    return f"step-{step}"


class ExportRequests:
    """The latest request id asked for (written by the progress server's thread, read by the driver)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: str | None = None

    def ask(self, request_id: str) -> bool:
        """Note ``request_id`` as the pending request (the newest one wins); False if the id is not valid."""
        if not valid_request_id(request_id):
            return False
        with self._lock:
            self._pending = request_id
        return True

    def pending(self) -> str | None:
        with self._lock:
            return self._pending


def served_requests(events: Iterable[Mapping[str, Any]]) -> set[str]:
    """Ids of the requests the driver has answered (exported or failed), from its events."""
    return {str(e["request"]) for e in events if e["kind"] in ("request_exported", "request_export_failed")}


def decide_request_export(
    pending: str | None,
    served: Collection[str],
    *,
    export_dir: str | None,
    committed: bool,
    step: int,
    total_steps: int,
) -> str | None:
    """The request to export now, at this step boundary, or None.

    Only right after a committed step (the weights are a whole step's), only with an export location,
    never twice for one id, and not after the last step (the final export is then written anyway).
    """
    if pending is None or pending in served or export_dir is None or not committed:
        return None
    if step >= total_steps:
        return None
    return pending
