"""The trainer -> operator contract: what the head pod serves on its progress port.

The driver in the head pod answers ``GET /progress`` on :data:`~elastrain_trainer.config.podenv.PROGRESS_PORT`
with a :class:`ProgressReport` as JSON (camelCase); the operator reads it every resync and copies it
into ``status.progress``. Importable without torch or ray, so the operator validates it with the same
model the trainer writes it with.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field

from elastrain_trainer.config.base import ConfigModel

#: The path the head's progress server answers on.
PROGRESS_PATH = "/progress"
#: The query parameter of ``GET /progress`` naming a pending export request (``?exportRequest=ID``).
EXPORT_REQUEST_PARAM = "exportRequest"
#: The query parameter of ``GET /progress`` naming the worker pods about to be deleted, by pod IP
#: (``?leave=IP,IP``; empty: none). The newest poll's set replaces the last one.
LEAVE_PARAM = "leave"
#: Most addresses a report acknowledges as left.
MAX_LEFT = 1000
#: Longest export request id accepted (an annotation value is free text; the id travels in a URL and in status).
MAX_REQUEST_ID = 128
#: Warnings a report carries at most (the oldest are kept: they are the first signs).
MAX_WARNINGS = 10


def valid_request_id(request_id: str) -> bool:
    """An export request id the head accepts: 1..128 printable characters without whitespace."""
    printable = request_id.isprintable() and not any(c.isspace() for c in request_id)
    return 0 < len(request_id) <= MAX_REQUEST_ID and printable


class TrainerState(StrEnum):
    """Where the driver is."""

    STARTING = "Starting"
    """Ray is up; waiting for enough worker pods to join (elastic.minReplicas)."""
    TRAINING = "Training"
    FINISHED = "Finished"
    """Every step committed; the head exits 0 once the operator has read this."""
    FAILED = "Failed"
    """The driver stopped on an error (message says which); the head exits non-zero."""


class CheckpointFailureReport(ConfigModel):
    """Checkpoint saves are failing: the newest failure (training goes on; cleared once a save succeeds)."""

    step: int = Field(ge=0)
    """The step whose save failed last."""
    cause: str = Field(min_length=1, max_length=500)
    """What went wrong and where, the same across retries: ``no space left on device at file:///ckpt``."""
    detail: str = Field("", max_length=500)
    """What changes between attempts: ``0 bytes free, 1.7 MB needed``."""
    consecutive_failures: int = Field(1, ge=1)
    """Saves failed in a row."""


class ExportRequestReport(ConfigModel):
    """The newest export asked for while training (by the operator's poll), once the driver served it."""

    request_id: str = Field(min_length=1, max_length=MAX_REQUEST_ID)
    """The id the request named (the ``elastrain.dev/export-request`` annotation's value)."""
    step: int = Field(ge=0)
    """The optimizer step the exported weights are from."""
    path: str | None = None
    """Directory of the exported model (``<export location>/step-<N>``); None if the export failed."""
    error: str | None = Field(None, max_length=500)
    """Why the export failed (training went on)."""


class ProgressReport(ConfigModel):
    """The driver's view of training, refreshed after every step."""

    # A wire format between versions: an operator older than the trainer ignores fields it does not know.
    model_config = ConfigDict(extra="ignore")

    state: TrainerState = TrainerState.STARTING
    step: int = Field(0, ge=0)
    """Last committed optimizer step."""
    total_steps: int = Field(0, ge=0)
    loss: float | None = None
    """Training loss of the last committed step."""
    val_loss: float | None = None
    """Latest held-out loss."""
    tokens_per_second: float | None = Field(None, ge=0.0)
    groups: int = Field(0, ge=0)
    """Replica groups (worker pods) in the last step's quorum."""
    world_size: int = Field(0, ge=0)
    """Processes that took part in the last step."""
    groups_out: int = Field(0, ge=0)
    """Worker pods still there whose replica group the step watchdog fenced and that have not trained
    since: the operator leaves them out of ``status.workers.ready``."""
    groups_out_reason: str | None = Field(None, max_length=64)
    """Why the newest of them was dropped: ``WorkerHung`` (fenced by the step watchdog)."""
    last_checkpoint_step: int | None = Field(None, ge=0)
    """The newest complete checkpoint (a failed save leaves it where it was)."""
    checkpoint_failure: CheckpointFailureReport | None = None
    """Set while checkpoint saves fail (the operator's condition ``CheckpointsFailing``); None once one succeeds."""
    export_path: str | None = None
    """Directory of the exported Hugging Face model, once written."""
    export_step: int | None = Field(None, ge=0)
    """Step of the exported weights."""
    export_request: ExportRequestReport | None = None
    """The newest export asked for while training, once served (``?exportRequest=ID`` on the poll)."""
    left: list[str] = Field(default_factory=list, max_length=MAX_LEFT)
    """Pod addresses the last poll named as leaving (``?leave=``) that hold no replica group any more: their
    groups left at a step boundary (or never started), so the operator may delete those pods now."""
    message: str = ""
    """Why the driver failed, when state is Failed."""
    warnings: list[str] = Field(default_factory=list, max_length=MAX_WARNINGS)
    """What the driver warns about while training goes on (data that repeats, a node whose groups keep
    failing), oldest first, each once; the operator turns each new one into a Warning Event."""
