"""Names of the TrainingJob API: group, version, kind, labels, condition types and reasons.

Every other module refers to these names, never to string literals.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

GROUP: Final = "elastrain.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = "elastrain.dev/v1alpha1"  # GROUP/VERSION, spelled out so its type is a Literal
KIND: Final = "TrainingJob"
LIST_KIND: Final = "TrainingJobList"
PLURAL: Final = "trainingjobs"
SINGULAR: Final = "trainingjob"
SHORT_NAMES: Final = ("tj",)
CATEGORIES: Final = ("elastrain",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

#: Longest TrainingJob name: child names such as ``NAME-worker-1000`` must stay valid DNS-1035
#: labels (63 characters) and label values.
MAX_NAME_LENGTH: Final = 50

#: Prefix of the environment variables the operator sets in trainer pods; users may not set them.
RESERVED_ENV_PREFIX: Final = "ELASTRAIN_"

#: The memory-backed volume the operator mounts at /dev/shm; a user's own mount at SHM_PATH replaces it.
SHM_VOLUME: Final = "dshm"
SHM_PATH: Final = "/dev/shm"


class Label(StrEnum):
    """Labels on every object the operator creates; they alone identify an object's job and role."""

    JOB = f"{GROUP}/job"
    ROLE = f"{GROUP}/role"
    INDEX = f"{GROUP}/index"
    ATTEMPT = f"{GROUP}/attempt"
    """Counts the pods that have held one role/index: a replacement gets the next attempt and a new name."""


#: The annotation a user sets on a running job to ask for an export (``kubectl annotate tj NAME ...=ID``).
EXPORT_REQUEST_ANNOTATION: Final = f"{GROUP}/export-request"


class Role(StrEnum):
    """Values of the ``elastrain.dev/role`` label."""

    HEAD = "head"
    WORKER = "worker"


class ConditionType(StrEnum):
    """Types of the conditions in ``status.conditions``."""

    CREATED = "Created"
    RUNNING = "Running"
    RESCALING = "Rescaling"
    SCALE_UP_BLOCKED = "ScaleUpBlocked"
    CHECKPOINTS_FAILING = "CheckpointsFailing"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class Reason(StrEnum):
    """Machine-readable reasons of conditions and events (CamelCase, as Kubernetes expects)."""

    INVALID_SPEC = "InvalidSpec"
    CREATED = "JobCreated"
    WORKERS_READY = "WorkersReady"
    BELOW_MIN_REPLICAS = "BelowMinReplicas"
    UNSCHEDULABLE = "Unschedulable"
    NODE_LOST = "NodeLost"
    WORKER_LOST = "WorkerLost"
    WORKER_HUNG = "WorkerHung"
    SCALED_UP = "ScaledUp"
    SCALED_DOWN = "ScaledDown"
    LEAVE_TIMED_OUT = "LeaveTimedOut"
    SUSPENDED = "JobSuspended"
    RESUMED = "JobResumed"
    SUCCEEDED = "JobSucceeded"
    BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    APPLICATION_ERROR = "ApplicationError"
    TRAINER_WARNING = "TrainerWarning"
    CHECKPOINT_SAVE_FAILED = "CheckpointSaveFailed"
    CHECKPOINT_SAVED = "CheckpointSaved"
    EXPORTED_ON_REQUEST = "ExportedOnRequest"
    EXPORT_REQUEST_FAILED = "ExportRequestFailed"
    EXPORT_REQUEST_REFUSED = "ExportRequestRefused"
