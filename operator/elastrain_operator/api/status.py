"""The observed state of a TrainingJob, written by the operator (the status subresource)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from elastrain_trainer.config import ConfigModel
from elastrain_trainer.config.progress import MAX_WARNINGS

_MAX_REASON = 128
_MAX_MESSAGE = 32768


class JobPhase(StrEnum):
    """Where a job is in its life; see ``is_terminal``."""

    PENDING = "Pending"
    RUNNING = "Running"
    RESCALING = "Rescaling"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def is_terminal(self) -> bool:
        """True when the job will not run again (its pods are cleaned up)."""
        return self in (JobPhase.SUCCEEDED, JobPhase.FAILED)


class Condition(ConfigModel):
    """A Kubernetes-style condition: one aspect of the job's state, with when and why it last changed."""

    type: str = Field(min_length=1, max_length=316)
    """Condition type, e.g. Running, Rescaling, ScaleUpBlocked, Suspended, Succeeded, Failed."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds."""
    reason: str | None = Field(None, max_length=_MAX_REASON)
    """Machine-readable CamelCase reason of the last transition, e.g. Unschedulable."""
    message: str | None = Field(None, max_length=_MAX_MESSAGE)
    """Human-readable detail."""
    last_transition_time: datetime | None = None
    """When status last changed."""
    observed_generation: int | None = Field(None, ge=0)
    """metadata.generation of the spec the condition was computed from."""


class WorkersStatus(ConfigModel):
    """Worker pods and processes."""

    desired: int = Field(0, ge=0)
    """Worker pods wanted (spec.replicas)."""
    ready: int = Field(0, ge=0)
    """Worker pods whose replica group takes part in training."""
    min: int = Field(0, ge=0)
    """Fewest worker pods the job trains with."""
    max: int = Field(0, ge=0)
    """Most worker pods the job trains with."""
    world_size: int = Field(0, ge=0)
    """Processes training right now: participating groups x acceleratorsPerWorker."""
    unhealthy: int | None = Field(None, ge=0)
    """Worker pods Running but out of training: the driver fenced their hung replica group and is
    restarting it; not counted in ready."""


class ProgressStatus(ConfigModel):
    """Training progress as last reported by the driver."""

    step: int = Field(0, ge=0)
    """Last committed optimizer step."""
    total_steps: int = Field(0, ge=0)
    """trainer.steps."""
    loss: float | None = None
    """Training loss at step."""
    tokens_per_second: float | None = Field(None, ge=0.0)
    """Training throughput over the last steps, all workers together."""
    last_checkpoint_step: int | None = Field(None, ge=0)
    """Step of the newest complete durable checkpoint."""
    warnings: list[str] | None = Field(None, max_length=MAX_WARNINGS)
    """What the driver warns about while training goes on (data that repeats, a node whose groups keep
    failing), oldest first; each one is also a TrainerWarning Event."""


class ExportStatus(ConfigModel):
    """Where the trained model was exported."""

    path: str = Field(min_length=1, max_length=4096)
    """Directory of the Hugging Face model inside the pods (under spec.export's location)."""
    step: int = Field(ge=0)
    """The optimizer step the exported weights are from."""


class ExportRequestState(StrEnum):
    """What became of an export asked for while training."""

    EXPORTED = "Exported"
    FAILED = "Failed"
    REFUSED = "Refused"


class ExportRequestStatus(ConfigModel):
    """The newest export asked for with the ``elastrain.dev/export-request`` annotation, once answered."""

    request_id: str = Field(min_length=1, max_length=253)
    """The annotation's value the answer is for; the same value again asks nothing."""
    state: ExportRequestState
    """Exported, Failed or Refused."""
    path: str | None = Field(None, max_length=4096)
    """Directory of the exported model inside the pods (``<export location>/step-<N>``), when Exported."""
    step: int | None = Field(None, ge=0)
    """The optimizer step the exported weights are from."""
    message: str | None = Field(None, max_length=_MAX_MESSAGE)
    """Why it failed or was refused."""


class RestartCounts(ConfigModel):
    """Restarts of the training, by cause."""

    application: int = Field(0, ge=0)
    """Restarts after application failures; these count against runPolicy.backoffLimit."""
    infrastructure: int = Field(0, ge=0)
    """Restarts after infrastructure loss (head pod lost, every worker lost); never counted against backoffLimit."""


class ResizeRecord(ConfigModel):
    """One change of the number of participating worker pods."""

    time: datetime
    """When the new size took effect."""
    from_: int = Field(ge=0, validation_alias="from", serialization_alias="from")
    """Worker pods before."""
    to: int = Field(ge=0)
    """Worker pods after."""
    reason: str = Field(max_length=_MAX_REASON)
    """Why: ScaledUp (more workers ready), ScaledDown (spec.replicas lowered), WorkerLost (a worker failed
    or was lost with its node) or WorkerHung (a worker's step hung; the driver fenced and restarts it)."""


class TrainingJobStatus(ConfigModel):
    """Observed state of a TrainingJob, written by the operator."""

    phase: JobPhase | None = None
    """Pending, Running, Rescaling, Suspended, Succeeded or Failed."""
    conditions: list[Condition] | None = Field(
        None,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Current conditions, one per type."""
    workers: WorkersStatus | None = None
    """Worker pods and processes."""
    progress: ProgressStatus | None = None
    """Training progress."""
    export: ExportStatus | None = None
    """The exported model at the end of the run, once written."""
    export_request: ExportRequestStatus | None = None
    """The newest export asked for while training (annotation ``elastrain.dev/export-request``), once answered."""
    restarts: RestartCounts | None = None
    """Restarts by cause."""
    resizes: list[ResizeRecord] | None = Field(None, max_length=20)
    """The most recent resizes, oldest first (at most 20)."""
    start_time: datetime | None = None
    """When the job first started running."""
    completion_time: datetime | None = None
    """When the job succeeded or failed."""
    selector: str | None = Field(None, max_length=1024)
    """Label selector of the worker pods, for the /scale subresource."""
    observed_generation: int | None = Field(None, ge=0)
    """metadata.generation of the spec this status reflects."""
