"""Kubernetes types embedded in a TrainingJob, as the CRD schema sees them.

Small, stable upstream types (an env var's name and value, tolerations, resource maps) are typed,
so the API server checks them at ``kubectl apply``. Large upstream types (a volume source,
``valueFrom``, affinity, topology spread constraints) keep only their key fields typed and carry
the rest as ``x-kubernetes-preserve-unknown-fields``: the operator copies them verbatim into the
pod template and the API server validates them fully when the operator creates the pods; an
error there becomes the job's ``Failed`` condition. This keeps the CRD small and independent of
the Kubernetes version while catching the common mistakes early.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from elastrain_operator.api.constants import RESERVED_ENV_PREFIX
from elastrain_trainer.config import ConfigModel, Rule

#: Free-form upstream object: the CRD generator turns the open JSON schema of ``dict[str, Any]``
#: (and of models with ``extra="allow"``) into ``x-kubernetes-preserve-unknown-fields: true``.
OpenObject = dict[str, Any]

#: A map of resource names to quantities ("4", "16Gi", 2).
Quantities = dict[str, int | str]


class EnvVar(ConfigModel):
    """An environment variable of the trainer containers (core/v1 EnvVar)."""

    name: str = Field(min_length=1, max_length=256)
    """Variable name; names starting with ELASTRAIN_ are set by the operator and reserved."""
    value: str | None = Field(None, max_length=32768)
    """Literal value."""
    value_from: OpenObject | None = None
    """Source of the value (core/v1 EnvVarSource: secretKeyRef, configMapKeyRef, fieldRef, ...), copied verbatim."""

    rules = (
        Rule(
            cel=f"!self.name.startsWith('{RESERVED_ENV_PREFIX}')",
            holds=lambda e: not e.name.startswith(RESERVED_ENV_PREFIX),
            field="name",
            message=f"env names starting with {RESERVED_ENV_PREFIX} are set by the operator; rename the variable",
            shows=("name",),
        ),
    )


class Volume(ConfigModel):
    """A pod volume (core/v1 Volume): a name plus one volume source, copied verbatim into the pods."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=63)
    """Volume name, referenced by volumeMounts."""


class VolumeMount(ConfigModel):
    """Where a volume is mounted in the trainer containers (core/v1 VolumeMount), copied verbatim."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=63)
    """Name of a volume in pod.volumes."""
    mount_path: str = Field(min_length=1, max_length=4096)
    """Absolute path in the container."""


class Toleration(ConfigModel):
    """A toleration of the worker pods (core/v1 Toleration)."""

    key: str | None = Field(None, max_length=317)
    """Taint key; empty with operator Exists tolerates every taint."""
    operator: Literal["Exists", "Equal"] | None = None
    """Exists or Equal (the default)."""
    value: str | None = Field(None, max_length=63)
    """Taint value for operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to tolerate; empty tolerates all effects."""
    toleration_seconds: int | None = None
    """For NoExecute: how long the pod stays bound after the taint appears."""


class ResourceRequirements(ConfigModel):
    """CPU, memory and other resources of each worker's trainer container (core/v1 ResourceRequirements).

    The operator adds acceleratorsPerWorker GPUs (nvidia.com/gpu) to the limits itself.
    """

    requests: Quantities | None = None
    """Minimum resources, e.g. {cpu: "8", memory: 64Gi}."""
    limits: Quantities | None = None
    """Maximum resources."""
