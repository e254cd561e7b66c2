"""The operator -> trainer contract: environment variables of every head and worker pod.

The operator builds them (``elastrain_operator.builders.env``) and the trainer reads them back with
:func:`read_pod_env`, validating with the same models, so a pod never starts on a config the
operator did not accept. Importable without torch or ray.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Literal

from pydantic import Field, ValidationError
from pydantic.alias_generators import to_camel

from elastrain_trainer.config.base import ConfigModel
from elastrain_trainer.config.fault_tolerance import FaultToleranceConfig
from elastrain_trainer.config.trainer import TrainerConfig

#: Ports the head pod serves (Ray GCS, torchft lighthouse, progress for the operator).
RAY_PORT = 6379
LIGHTHOUSE_PORT = 29510
PROGRESS_PORT = 8765

#: Where a trainer pod writes why it stopped. The kubelet copies the file into the container's
#: ``state.terminated.message``; the operator puts that into the job's condition and Event.
TERMINATION_LOG = "/dev/termination-log"
#: Overrides :data:`TERMINATION_LOG` (not set by the operator: the development pod runner points it at
#: a file of its own per pod, as a kubelet mounts one).
TERMINATION_LOG_ENV = "ELASTRAIN_TERMINATION_LOG"
#: The kubelet keeps at most this many bytes of a termination message.
TERMINATION_MESSAGE_MAX_BYTES = 4096


class PodEnv(StrEnum):
    """Names of the environment variables the operator sets (all under the reserved ELASTRAIN_ prefix)."""

    JOB_NAME = "ELASTRAIN_JOB_NAME"
    NAMESPACE = "ELASTRAIN_NAMESPACE"
    ROLE = "ELASTRAIN_ROLE"
    WORKER_INDEX = "ELASTRAIN_WORKER_INDEX"
    POD_NAME = "ELASTRAIN_POD_NAME"
    POD_IP = "ELASTRAIN_POD_IP"
    HEAD_ADDRESS = "ELASTRAIN_HEAD_ADDRESS"
    RAY_PORT = "ELASTRAIN_RAY_PORT"
    LIGHTHOUSE_PORT = "ELASTRAIN_LIGHTHOUSE_PORT"
    PROGRESS_PORT = "ELASTRAIN_PROGRESS_PORT"
    MIN_WORKERS = "ELASTRAIN_MIN_WORKERS"
    MAX_WORKERS = "ELASTRAIN_MAX_WORKERS"
    ACCELERATORS_PER_WORKER = "ELASTRAIN_ACCELERATORS_PER_WORKER"
    DEVICE = "ELASTRAIN_DEVICE"
    TRAINER_CONFIG = "ELASTRAIN_TRAINER_CONFIG"
    CHECKPOINT = "ELASTRAIN_CHECKPOINT"
    EXPORT = "ELASTRAIN_EXPORT"
    FAULT_TOLERANCE = "ELASTRAIN_FAULT_TOLERANCE"


class CheckpointTarget(ConfigModel):
    """Where and how often the trainer writes durable checkpoints (resolved from the job's checkpoint spec)."""

    location: str = Field(min_length=1)
    """A file:// URI of a shared filesystem or a local path (a mounted PVC)."""
    interval_steps: int = Field(ge=1)
    """Steps between checkpoints."""
    keep: int = Field(ge=1)
    """Newest checkpoints kept."""
    async_save: bool = True
    """Save in the background while training goes on."""
    max_consecutive_failures: int = Field(0, ge=0)
    """Saves failing in a row before the job fails with the cause; 0: never (training goes on)."""


class ExportTarget(ConfigModel):
    """Where the trainer writes the trained model as a Hugging Face model directory (from the job's export spec)."""

    location: str = Field(min_length=1)
    """A file:// URI of a shared filesystem or a local path (a mounted PVC); the head writes
    ``<location>/step-<N>`` and ``<location>/final`` into it."""


class PodContract(ConfigModel):
    """Everything a trainer pod learns from its environment."""

    job_name: str
    namespace: str
    role: Literal["head", "worker"]
    worker_index: int | None = Field(None, ge=0)
    pod_name: str | None = None
    pod_ip: str | None = None
    head_address: str
    ray_port: int = RAY_PORT
    lighthouse_port: int = LIGHTHOUSE_PORT
    progress_port: int = PROGRESS_PORT
    min_workers: int = Field(ge=1)
    max_workers: int = Field(ge=1)
    accelerators_per_worker: int = Field(ge=1)
    device: Literal["gpu", "cpu"]
    trainer: TrainerConfig
    checkpoint: CheckpointTarget | None = None
    export: ExportTarget | None = None
    fault_tolerance: FaultToleranceConfig = FaultToleranceConfig()


def write_pod_env(contract: PodContract) -> dict[str, str]:
    """The environment variables that carry ``contract`` (unset optional values are left out)."""
    values: dict[PodEnv, object] = {
        PodEnv.JOB_NAME: contract.job_name,
        PodEnv.NAMESPACE: contract.namespace,
        PodEnv.ROLE: contract.role,
        PodEnv.WORKER_INDEX: contract.worker_index,
        PodEnv.HEAD_ADDRESS: contract.head_address,
        PodEnv.RAY_PORT: contract.ray_port,
        PodEnv.LIGHTHOUSE_PORT: contract.lighthouse_port,
        PodEnv.PROGRESS_PORT: contract.progress_port,
        PodEnv.MIN_WORKERS: contract.min_workers,
        PodEnv.MAX_WORKERS: contract.max_workers,
        PodEnv.ACCELERATORS_PER_WORKER: contract.accelerators_per_worker,
        PodEnv.DEVICE: contract.device,
        PodEnv.TRAINER_CONFIG: contract.trainer.model_dump_json(),
        PodEnv.CHECKPOINT: contract.checkpoint.model_dump_json() if contract.checkpoint else None,
        PodEnv.EXPORT: contract.export.model_dump_json() if contract.export else None,
        PodEnv.FAULT_TOLERANCE: contract.fault_tolerance.model_dump_json(),
    }
    return {name.value: str(value) for name, value in values.items() if value is not None}


class PodEnvError(ValueError):
    """A pod's environment does not hold a valid contract; the message names the variable and the fix."""


def read_pod_env(env: Mapping[str, str]) -> PodContract:
    """Parse and validate the contract from a pod's environment."""
    raw: dict[str, object] = {}
    for name in PodEnv:
        if name in env:
            key = name.value.removeprefix("ELASTRAIN_").lower()
            value: object = env[name]
            if name in (PodEnv.TRAINER_CONFIG, PodEnv.CHECKPOINT, PodEnv.EXPORT, PodEnv.FAULT_TOLERANCE):
                try:
                    value = json.loads(env[name])
                except ValueError as err:
                    raise PodEnvError(
                        f"{name} is not valid JSON ({err}); the operator writes it, do not override it"
                    ) from err
            raw["trainer" if name is PodEnv.TRAINER_CONFIG else key] = value
    try:
        return PodContract.model_validate(raw, by_name=True)
    except ValidationError as err:
        problems = "; ".join(f"{_variable_of(e['loc'])}: {e['msg']}" for e in err.errors())
        raise PodEnvError(
            f"the pod environment is not a valid elastrain contract ({problems}); the operator sets these "
            "variables: run the trainer in a TrainingJob's pod, or set them as docs/operator.md lists"
        ) from err


def _variable_of(loc: tuple[int | str, ...]) -> str:
    """The environment variable behind a validation error's location (field paths inside JSON kept)."""
    if not loc:
        return "the environment"
    head, rest = str(loc[0]), ".".join(str(part) for part in loc[1:])
    for name in PodEnv:
        key = "trainer" if name is PodEnv.TRAINER_CONFIG else name.value.removeprefix("ELASTRAIN_").lower()
        if head in (key, to_camel(key)):
            return f"{name.value}{' ' + rest if rest else ''}"
    return head
