"""Names and labels of the objects a TrainingJob owns: deterministic, so creation is idempotent."""

from __future__ import annotations

from elastrain_operator.api import Label, Role


def head_service_name(job: str) -> str:
    return f"{job}-head"


def head_pod_name(job: str) -> str:
    return f"{job}-head"


def worker_pod_name(job: str, index: int) -> str:
    return f"{job}-worker-{index}"


def head_address(job: str, namespace: str) -> str:
    """DNS name of the head pod through its headless Service."""
    return f"{head_service_name(job)}.{namespace}.svc"


def job_labels(job: str) -> dict[str, str]:
    """The label every object of the job carries; selecting on it finds them all."""
    return {Label.JOB: job}


def pod_labels(job: str, role: Role, index: int) -> dict[str, str]:
    return {Label.JOB: job, Label.ROLE: role.value, Label.INDEX: str(index)}


def worker_selector(job: str) -> str:
    """Label selector of the job's worker pods, as a string (status.selector, for /scale)."""
    return f"{Label.JOB}={job},{Label.ROLE}={Role.WORKER.value}"
