"""The head's progress server: ``GET /progress`` answers the driver's latest :class:`ProgressReport`.

The operator polls it every resync and copies it into ``status.progress``. The standard library's
threading HTTP server is enough for one small JSON document read every few seconds.
Once training finished (or failed), the head waits until the operator has read the final report
(:meth:`ProgressBoard.wait_read`), so ``status.progress`` ends at the last step rather than a
few steps short.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from elastrain_trainer.config.progress import (
    EXPORT_REQUEST_PARAM,
    LEAVE_PARAM,
    PROGRESS_PATH,
    ProgressReport,
    TrainerState,
)


def _query(path: str) -> dict[str, list[str]]:
    return parse_qs(path.split("?", 1)[1] if "?" in path else "", keep_blank_values=True)


def export_request_of(path: str) -> str | None:
    """The export request id a poll names (``/progress?exportRequest=ID``), or None."""
    values = [v for v in _query(path).get(EXPORT_REQUEST_PARAM, []) if v]
    return values[-1] if values else None


def leave_of(path: str) -> tuple[str, ...] | None:
    """The leaving pod addresses a poll names (``/progress?leave=IP,IP``; ``leave=``: none), or None without it."""
    values = _query(path).get(LEAVE_PARAM)
    if values is None:
        return None
    return tuple(a for a in values[-1].split(",") if a)


class ProgressBoard:
    """The latest report, shared between the training loop (writer) and the HTTP server (readers)."""

    def __init__(self, total_steps: int) -> None:
        self._lock = threading.Lock()
        self._report = ProgressReport(total_steps=total_steps)
        self._final_read = threading.Event()

    def get(self) -> ProgressReport:
        with self._lock:
            return self._report

    def update(self, **changes: Any) -> None:
        with self._lock:
            self._report = self._report.model_copy(update=changes)

    def served(self) -> bytes:
        """The report as JSON, noting that a final report has been read."""
        report = self.get()
        if report.state in (TrainerState.FINISHED, TrainerState.FAILED):
            self._final_read.set()
        return report.model_dump_json(by_alias=True).encode()

    def wait_read(self, timeout: float) -> bool:
        """Block until a final report was served (True) or ``timeout`` passed (False)."""
        return self._final_read.wait(timeout)


class ProgressServer:
    """Serves a :class:`ProgressBoard` on ``host:port`` from a daemon thread."""

    def __init__(
        self,
        board: ProgressBoard,
        host: str,
        port: int,
        on_export_request: Callable[[str], object] | None = None,
        on_leave: Callable[[tuple[str, ...]], object] | None = None,
    ) -> None:
        """``on_export_request(id)``: called when a poll names an export request (the driver's mailbox);
        ``on_leave(addresses)``: called when a poll names the leaving pods, before the report is served."""

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != PROGRESS_PATH:
                    self.send_error(HTTPStatus.NOT_FOUND, f"only {PROGRESS_PATH} is served here")
                    return
                request = export_request_of(self.path)
                if request is not None and on_export_request is not None:
                    on_export_request(request)
                leaving = leave_of(self.path)
                if leaving is not None and on_leave is not None:
                    on_leave(leaving)
                body = board.served()
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # one poll per resync would flood the pod log

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="elastrain-progress", daemon=True)
        self.thread.start()

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()
