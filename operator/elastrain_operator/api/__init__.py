"""The TrainingJob API (elastrain.dev/v1alpha1): pydantic models that generate the CRD.

``parse_trainingjob`` turns a raw object into a :class:`TrainingJob`; ``build_crd`` (in
``elastrain_operator.api.crd``) and ``build_api_reference`` (``elastrain_operator.api.reference``)
turn the models into the CRD and its documentation.
"""

from elastrain_operator.api.checkpoint import CheckpointSpec, PvcLocation
from elastrain_operator.api.constants import (
    API_VERSION,
    CATEGORIES,
    CRD_NAME,
    GROUP,
    KIND,
    LIST_KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    ConditionType,
    Label,
    Reason,
    Role,
)
from elastrain_operator.api.export import ExportSpec
from elastrain_operator.api.kube_types import EnvVar, ResourceRequirements, Toleration, Volume, VolumeMount
from elastrain_operator.api.parse import InvalidTrainingJobError, parse_trainingjob
from elastrain_operator.api.pod import PodOverrides, SchedulingSpec
from elastrain_operator.api.resource import ObjectMeta, TrainingJob
from elastrain_operator.api.run_policy import RunPolicy
from elastrain_operator.api.spec import ElasticPolicy, TrainingJobSpec
from elastrain_operator.api.status import (
    Condition,
    ExportStatus,
    JobPhase,
    ProgressStatus,
    ResizeRecord,
    RestartCounts,
    TrainingJobStatus,
    WorkersStatus,
)
from elastrain_trainer.config import TrainerConfig

__all__ = [
    "API_VERSION",
    "CATEGORIES",
    "CRD_NAME",
    "GROUP",
    "KIND",
    "LIST_KIND",
    "PLURAL",
    "SHORT_NAMES",
    "SINGULAR",
    "VERSION",
    "CheckpointSpec",
    "Condition",
    "ConditionType",
    "ElasticPolicy",
    "EnvVar",
    "ExportSpec",
    "ExportStatus",
    "InvalidTrainingJobError",
    "JobPhase",
    "Label",
    "ObjectMeta",
    "PodOverrides",
    "ProgressStatus",
    "PvcLocation",
    "Reason",
    "ResizeRecord",
    "ResourceRequirements",
    "RestartCounts",
    "Role",
    "RunPolicy",
    "SchedulingSpec",
    "Toleration",
    "TrainerConfig",
    "TrainingJob",
    "TrainingJobSpec",
    "TrainingJobStatus",
    "Volume",
    "VolumeMount",
    "WorkersStatus",
    "parse_trainingjob",
]
