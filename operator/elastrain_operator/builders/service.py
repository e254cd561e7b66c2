"""The head pod's headless Service: a stable DNS name for Ray, the torchft lighthouse and progress."""

from __future__ import annotations

from typing import Any

from elastrain_operator.api import Label, Role
from elastrain_operator.builders.names import head_service_name, job_labels
from elastrain_operator.builders.owner import owner_reference
from elastrain_trainer.config.podenv import LIGHTHOUSE_PORT, PROGRESS_PORT, RAY_PORT


def build_head_service(*, job: str, namespace: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": head_service_name(job),
            "namespace": namespace,
            "labels": {**job_labels(job), Label.ROLE: Role.HEAD.value},
            "ownerReferences": [owner_reference(name=job, uid=uid)],
        },
        "spec": {
            "clusterIP": "None",
            # The workers must resolve the head before it is Ready: Ray and torchft dial it at start-up.
            "publishNotReadyAddresses": True,
            "selector": {Label.JOB: job, Label.ROLE: Role.HEAD.value},
            "ports": [
                {"name": "ray-gcs", "port": RAY_PORT, "targetPort": RAY_PORT},
                {"name": "lighthouse", "port": LIGHTHOUSE_PORT, "targetPort": LIGHTHOUSE_PORT},
                {"name": "progress", "port": PROGRESS_PORT, "targetPort": PROGRESS_PORT},
            ],
        },
    }
