"""The environment of trainer pods: the operator -> trainer contract (see elastrain_trainer.config.podenv)."""

from __future__ import annotations

from typing import Any

from elastrain_operator.api import Role, TrainingJob
from elastrain_operator.builders.names import head_address
from elastrain_operator.builders.secret import ray_auth_env
from elastrain_trainer.config.podenv import CheckpointTarget, ExportTarget, PodContract, PodEnv, write_pod_env


def checkpoint_target(job: TrainingJob) -> CheckpointTarget | None:
    """Where the trainer writes checkpoints: the URI, or the PVC's mount path inside the pod."""
    spec = job.spec.checkpoint
    if spec is None:
        return None
    location = spec.uri if spec.uri is not None else CHECKPOINT_MOUNT_PATH
    return CheckpointTarget(
        location=location,
        interval_steps=spec.interval_steps,
        keep=spec.keep,
        async_save=spec.async_save,
        max_consecutive_failures=spec.max_consecutive_failures,
    )


#: Where a checkpoint PVC is mounted in every pod.
CHECKPOINT_MOUNT_PATH = "/checkpoints"
#: Where an export PVC is mounted in every pod.
EXPORT_MOUNT_PATH = "/export"


def export_target(job: TrainingJob) -> ExportTarget | None:
    """Where the trainer exports the trained model: the URI, or the PVC's mount path inside the pod."""
    spec = job.spec.export
    if spec is None:
        return None
    return ExportTarget(location=spec.uri if spec.uri is not None else EXPORT_MOUNT_PATH)


def build_contract(job: TrainingJob, *, role: Role, index: int | None) -> PodContract:
    name, namespace = job.metadata.name or "", job.metadata.namespace or ""
    spec = job.spec
    low = spec.elastic.min_replicas if spec.elastic else spec.replicas
    high = spec.elastic.max_replicas if spec.elastic else spec.replicas
    return PodContract(
        job_name=name,
        namespace=namespace,
        role=role.value,
        worker_index=index if role is Role.WORKER else None,
        head_address=head_address(name, namespace),
        min_workers=low,
        max_workers=high,
        accelerators_per_worker=spec.accelerators_per_worker,
        device=spec.device,
        trainer=spec.trainer,
        checkpoint=checkpoint_target(job),
        export=export_target(job),
        fault_tolerance=spec.fault_tolerance,
    )


def build_env(job: TrainingJob, *, role: Role, index: int | None) -> list[dict[str, Any]]:
    """Container env: the contract, the pod's own name and IP (downward API), Ray's token auth, the user's."""
    contract = write_pod_env(build_contract(job, role=role, index=index))
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(contract.items())]
    env += [
        {"name": PodEnv.POD_NAME.value, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": PodEnv.POD_IP.value, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    env += ray_auth_env(job.metadata.name or "")
    overrides = job.spec.pod.env if job.spec.pod and job.spec.pod.env else []
    env += [e.model_dump(exclude_none=True) for e in overrides]
    return env
