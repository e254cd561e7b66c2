"""The TrainingJob resource as a whole: apiVersion, kind, metadata, spec and status."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field

from elastrain_operator.api.constants import API_VERSION, KIND, MAX_NAME_LENGTH
from elastrain_operator.api.spec import TrainingJobSpec
from elastrain_operator.api.status import TrainingJobStatus
from elastrain_trainer.config import ConfigModel, Rule

#: DNS-1035 label: child Services are named after the job.
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


class ObjectMeta(ConfigModel):
    """The metadata fields the operator reads; the API server owns the rest (ignored here)."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class TrainingJob(ConfigModel):
    """An elastic distributed training job: Ray head and worker pods, FSDP2 inside a pod, torchft across pods."""

    api_version: Literal["elastrain.dev/v1alpha1"] = API_VERSION
    """elastrain.dev/v1alpha1."""
    kind: Literal["TrainingJob"] = KIND
    """TrainingJob."""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    """Standard object metadata."""
    spec: TrainingJobSpec
    status: TrainingJobStatus | None = None

    rules = (
        Rule(
            cel=f"self.metadata.name.size() <= {MAX_NAME_LENGTH} && self.metadata.name.matches('{NAME_PATTERN}')",
            holds=lambda j: (
                j.metadata.name is None
                or (len(j.metadata.name) <= MAX_NAME_LENGTH and re.match(NAME_PATTERN, j.metadata.name) is not None)
            ),
            field="metadata.name",
            message=f"metadata.name must be at most {MAX_NAME_LENGTH} characters of lowercase letters, digits "
            "and '-', starting with a letter (the operator's pods and services are named after the job); "
            "choose a shorter name",
        ),
    )
