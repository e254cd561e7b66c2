"""What a user may change in the pods the operator builds: pod overrides and scheduling."""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from elastrain_operator.api.constants import GROUP, SHM_PATH, SHM_VOLUME
from elastrain_operator.api.kube_types import (
    EnvVar,
    OpenObject,
    ResourceRequirements,
    Toleration,
    Volume,
    VolumeMount,
)
from elastrain_trainer.config import RULE_ERROR_TYPE, ConfigModel, Rule


def _list_map(*keys: str) -> dict[str, Any]:
    """Mark a list whose items are identified by keys: the server rejects duplicates, apply merges by key."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


class PodOverrides(ConfigModel):
    """Additions to the head and worker pods; everything else about the pods is built by the operator."""

    env: list[EnvVar] | None = Field(None, max_length=128, json_schema_extra=_list_map("name"))
    """Environment variables of the trainer containers; names must be unique."""
    volumes: list[Volume] | None = Field(None, max_length=64, json_schema_extra=_list_map("name"))
    """Volumes of the pods (core/v1 Volume, copied verbatim); names must be unique."""
    volume_mounts: list[VolumeMount] | None = Field(None, max_length=64, json_schema_extra=_list_map("mountPath"))
    """Mounts of those volumes in the trainer containers (core/v1 VolumeMount); mount paths must be unique.
    A mount at /dev/shm replaces the operator's memory-backed one (e.g. to give it a sizeLimit)."""
    resources: ResourceRequirements | None = None
    service_account_name: str | None = Field(
        None, min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
    )
    """Service account of the pods; unset: a service account without an API token."""
    annotations: dict[str, str] | None = Field(None, max_length=64)
    """Annotations added to the pods."""
    labels: dict[str, str] | None = Field(None, max_length=64)
    """Labels added to the pods; keys under elastrain.dev/ are reserved."""

    rules = (
        Rule(
            cel=f"!has(self.labels) || self.labels.all(k, !k.startsWith('{GROUP}/'))",
            holds=lambda p: not any(k.startswith(f"{GROUP}/") for k in p.labels or {}),
            field="labels",
            message=f"label keys under {GROUP}/ are set by the operator to find its pods; remove or rename them",
        ),
        Rule(
            cel="!has(self.volumeMounts) || (has(self.volumes) && "
            "self.volumeMounts.all(m, self.volumes.exists(v, v.name == m.name)))",
            holds=lambda p: all(m.name in {v.name for v in p.volumes or []} for m in p.volume_mounts or []),
            field="volumeMounts",
            message="every volumeMounts[].name must name an entry of volumes; add the volume or fix the name",
        ),
        Rule(
            cel=f"!has(self.volumes) || !self.volumes.exists(v, v.name == '{SHM_VOLUME}') || "
            f"(has(self.volumeMounts) && self.volumeMounts.exists(m, m.name == '{SHM_VOLUME}' && "
            f"m.mountPath == '{SHM_PATH}'))",
            holds=lambda p: (
                SHM_VOLUME not in {v.name for v in p.volumes or []}
                or any(m.name == SHM_VOLUME and m.mount_path == SHM_PATH for m in p.volume_mounts or [])
            ),
            field="volumes",
            message=f"a volume named {SHM_VOLUME!r} must be mounted at {SHM_PATH} (it then replaces the operator's "
            f"shared memory); rename the volume or mount it at {SHM_PATH}",
        ),
    )

    @model_validator(mode="after")
    def _check_unique_keys(self) -> Self:
        """Reject duplicate keys, as the API server does for the list-map fields."""
        for field, key, items in (
            ("env", "name", [e.name for e in self.env or []]),
            ("volumes", "name", [v.name for v in self.volumes or []]),
            ("volumeMounts", "mountPath", [m.mount_path for m in self.volume_mounts or []]),
        ):
            duplicates = sorted({item for item in items if items.count(item) > 1})
            if duplicates:
                raise PydanticCustomError(
                    RULE_ERROR_TYPE,
                    "{detail}",
                    {"detail": f"duplicate {key} {duplicates[0]!r}; each {key} may appear once", "field": field},
                )
        return self


class SchedulingSpec(ConfigModel):
    """Where the worker pods may run (copied into their pod spec)."""

    node_selector: dict[str, str] | None = Field(None, max_length=64)
    """Node labels a worker's node must have."""
    tolerations: list[Toleration] | None = Field(None, max_length=64)
    """Taints the worker pods tolerate."""
    affinity: OpenObject | None = None
    """Node and pod (anti-)affinity (core/v1 Affinity), copied verbatim."""
    priority_class_name: str | None = Field(None, min_length=1, max_length=253)
    """PriorityClass of the pods; with preemption, lower-priority jobs lose pods first."""
    scheduler_name: str | None = Field(None, min_length=1, max_length=253)
    """Scheduler of the pods, e.g. a gang scheduler; unset: the default scheduler."""
    topology_spread_constraints: list[OpenObject] | None = Field(None, max_length=16)
    """How worker pods spread over zones or nodes (core/v1 TopologySpreadConstraint), copied verbatim."""
