"""Read the driver's progress from the head pod's progress port (``GET /progress``, JSON).

Not the Kubernetes API, but I/O all the same, so it lives beside the client. A head that does not
answer (still starting, busy, gone) is not an error: the status keeps the last progress read.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from urllib.parse import urlencode

from pydantic import ValidationError

from elastrain_trainer.config.podenv import PROGRESS_PORT
from elastrain_trainer.config.progress import EXPORT_REQUEST_PARAM, LEAVE_PARAM, PROGRESS_PATH, ProgressReport

#: Seconds to wait for the head's answer; a reconcile round must stay short.
TIMEOUT_SECONDS = 1.0
log = logging.getLogger(__name__)


def progress_url(
    ip: str, port: int = PROGRESS_PORT, *, export_request: str | None = None, leave: tuple[str, ...] | None = None
) -> str:
    """The poll's URL; ``export_request`` names a pending export request (``?exportRequest=ID``), ``leave``
    the IPs of the worker pods about to be deleted (``?leave=IP,IP``; empty: none)."""
    host = f"[{ip}]" if ":" in ip else ip
    params: dict[str, str] = {}
    if export_request is not None:
        params[EXPORT_REQUEST_PARAM] = export_request
    if leave is not None:
        params[LEAVE_PARAM] = ",".join(leave)
    query = f"?{urlencode(params)}" if params else ""
    return f"http://{host}:{port}{PROGRESS_PATH}{query}"


def read_progress(
    ip: str,
    port: int = PROGRESS_PORT,
    timeout: float = TIMEOUT_SECONDS,
    *,
    export_request: str | None = None,
    leave: tuple[str, ...] | None = None,
) -> ProgressReport | None:
    """The head's latest report, or None when it does not answer or answers something unreadable.

    ``export_request``: the id of an export the user asked for, which the poll carries to the head;
    ``leave``: the IPs of the worker pods a scale-down is about to delete (``reconcile.leave``).
    """
    url = progress_url(ip, port, export_request=export_request, leave=leave)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
    except (OSError, urllib.error.URLError) as err:
        log.debug("no progress from %s:%d: %s", ip, port, err)
        return None
    try:
        return ProgressReport.model_validate_json(body)
    except ValidationError as err:
        log.warning("unreadable progress from %s:%d: %s", ip, port, err)
        return None
