"""Head and worker pods of a TrainingJob, as pure functions of the job.

The head pod runs the Ray head and the driver (torchft lighthouse, shard ledger, progress); it
needs no accelerator and prefers nodes without GPUs. Each worker pod is one Ray node and one
torchft replica group of ``acceleratorsPerWorker`` processes.
"""

from __future__ import annotations

import copy
from typing import Any

from elastrain_operator.api import Role, TrainingJob
from elastrain_operator.api.constants import SHM_PATH, SHM_VOLUME
from elastrain_operator.builders.env import CHECKPOINT_MOUNT_PATH, EXPORT_MOUNT_PATH, build_env
from elastrain_operator.builders.names import head_pod_name, pod_labels, worker_pod_name
from elastrain_operator.builders.owner import owner_reference
from elastrain_operator.builders.security import container_security_context, pod_security_context
from elastrain_trainer.config.podenv import LIGHTHOUSE_PORT, PROGRESS_PORT, RAY_PORT, TERMINATION_LOG

GPU_RESOURCE = "nvidia.com/gpu"
#: Node label set by NVIDIA's GPU feature discovery (and by the local cluster's fake GPU nodes).
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
#: What the trainer image runs; see trainer_image/ for the entry point.
HEAD_COMMAND = ("elastrain", "pod", "head")
WORKER_COMMAND = ("elastrain", "pod", "worker")
HEAD_RESOURCES = {"requests": {"cpu": "1", "memory": "2Gi"}}


def _meta(job: TrainingJob, name: str, role: Role, index: int, attempt: int) -> dict[str, Any]:
    overrides = job.spec.pod
    own = pod_labels(job.metadata.name or "", role, index, attempt)
    labels = {**(overrides.labels or {} if overrides else {}), **own}
    meta: dict[str, Any] = {
        "name": name,
        "namespace": job.metadata.namespace,
        "labels": labels,
        "ownerReferences": [owner_reference(name=job.metadata.name or "", uid=job.metadata.uid or "")],
    }
    if overrides and overrides.annotations:
        meta["annotations"] = dict(overrides.annotations)
    return meta


def _volumes(job: TrainingJob) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Pod volumes and container mounts: shared memory, the checkpoint and export PVCs, then the user's.

    A user's own mount at /dev/shm (e.g. an emptyDir with a sizeLimit) replaces the operator's.
    """
    overrides = job.spec.pod
    user_shm = overrides is not None and any(m.mount_path == SHM_PATH for m in overrides.volume_mounts or [])
    volumes: list[dict[str, Any]] = [] if user_shm else [{"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}}]
    mounts: list[dict[str, Any]] = [] if user_shm else [{"name": SHM_VOLUME, "mountPath": SHM_PATH}]
    checkpoint = job.spec.checkpoint
    if checkpoint is not None and checkpoint.pvc is not None:
        volumes.append({"name": "checkpoints", "persistentVolumeClaim": {"claimName": checkpoint.pvc.claim_name}})
        mounts.append(
            {"name": "checkpoints", "mountPath": CHECKPOINT_MOUNT_PATH, "subPath": checkpoint.pvc.path.lstrip("/")}
        )
    export = job.spec.export
    if export is not None and export.pvc is not None:
        volumes.append({"name": "export", "persistentVolumeClaim": {"claimName": export.pvc.claim_name}})
        mounts.append({"name": "export", "mountPath": EXPORT_MOUNT_PATH, "subPath": export.pvc.path.lstrip("/")})
    if overrides:
        volumes += [v.model_dump(exclude_none=True) for v in overrides.volumes or []]
        mounts += [m.model_dump(exclude_none=True) for m in overrides.volume_mounts or []]
    return volumes, mounts


def _worker_resources(job: TrainingJob) -> dict[str, Any]:
    count = str(job.spec.accelerators_per_worker)
    resources: dict[str, dict[str, Any]] = {"requests": {}, "limits": {}}
    user = job.spec.pod.resources if job.spec.pod and job.spec.pod.resources else None
    if user is not None:
        dumped = user.model_dump(exclude_none=True)
        for kind in ("requests", "limits"):
            resources[kind].update(dumped.get(kind, {}))
    # The accelerator count is acceleratorsPerWorker's to set: a user value for the same resource would
    # make requests and limits disagree and the pod invalid, so ours wins.
    if job.spec.device == "gpu":
        resources["requests"][GPU_RESOURCE] = resources["limits"][GPU_RESOURCE] = count
    else:
        resources["requests"]["cpu"] = count
    return {kind: values for kind, values in resources.items() if values}


def _pod(
    job: TrainingJob,
    *,
    name: str,
    role: Role,
    index: int,
    attempt: int,
    command: tuple[str, ...],
    resources: dict[str, Any],
    ports: list[dict[str, Any]],
) -> dict[str, Any]:
    volumes, mounts = _volumes(job)
    overrides = job.spec.pod
    service_account = overrides.service_account_name if overrides else None
    container: dict[str, Any] = {
        "name": "trainer",
        "image": job.spec.image,
        "imagePullPolicy": job.spec.image_pull_policy,
        "command": list(command),
        "env": build_env(job, role=role, index=index if role is Role.WORKER else None),
        "resources": resources,
        "volumeMounts": mounts,
        "securityContext": container_security_context(),
        # The trainer writes why it stopped here; a crash before it could falls back to the log's tail.
        # Either way it reaches the container status, and from there the job's condition and Event.
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if ports:
        container["ports"] = ports
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        # Trainer pods never call the Kubernetes API unless the user gives them a service account.
        "automountServiceAccountToken": service_account is not None,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": volumes,
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _meta(job, name, role, index, attempt), "spec": spec}


def build_head_pod(job: TrainingJob, attempt: int = 0) -> dict[str, Any]:
    """The head pod: Ray head and driver, no accelerator, preferably on a node without GPUs.

    ``attempt`` counts head pods before this one (a replacement gets a name of its own).
    """
    ports = [
        {"name": "ray-gcs", "containerPort": RAY_PORT},
        {"name": "lighthouse", "containerPort": LIGHTHOUSE_PORT},
        {"name": "progress", "containerPort": PROGRESS_PORT},
    ]
    pod = _pod(
        job,
        name=head_pod_name(job.metadata.name or "", attempt),
        role=Role.HEAD,
        index=0,
        attempt=attempt,
        command=HEAD_COMMAND,
        resources=copy.deepcopy(HEAD_RESOURCES),
        ports=ports,
    )
    pod["spec"]["affinity"] = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "preference": {
                        "matchExpressions": [{"key": GPU_PRESENT_LABEL, "operator": "NotIn", "values": ["true"]}]
                    },
                }
            ]
        }
    }
    return pod


def build_worker_pod(job: TrainingJob, index: int, attempt: int = 0) -> dict[str, Any]:
    """Worker pod ``index``: one Ray node, one replica group, with the spec's scheduling fields.

    ``attempt`` counts earlier pods of this index (a replacement gets a name of its own).
    """
    pod = _pod(
        job,
        name=worker_pod_name(job.metadata.name or "", index, attempt),
        role=Role.WORKER,
        index=index,
        attempt=attempt,
        command=WORKER_COMMAND,
        resources=_worker_resources(job),
        ports=[],
    )
    scheduling = job.spec.scheduling
    if scheduling is not None:
        spec = pod["spec"]
        if scheduling.node_selector:
            spec["nodeSelector"] = dict(scheduling.node_selector)
        if scheduling.tolerations:
            spec["tolerations"] = [t.model_dump(exclude_none=True) for t in scheduling.tolerations]
        if scheduling.affinity:
            spec["affinity"] = copy.deepcopy(scheduling.affinity)
        if scheduling.priority_class_name:
            spec["priorityClassName"] = scheduling.priority_class_name
        if scheduling.scheduler_name:
            spec["schedulerName"] = scheduling.scheduler_name
        if scheduling.topology_spread_constraints:
            spec["topologySpreadConstraints"] = copy.deepcopy(scheduling.topology_spread_constraints)
    return pod
