"""Names and labels of the objects a TrainingJob owns: deterministic, so creation is idempotent."""

from __future__ import annotations

from elastrain_operator.api import Label, Role


def head_service_name(job: str) -> str:
    return f"{job}-head"


def _attempt_suffix(attempt: int) -> str:
    # A replacement needs a name of its own: the pod it replaces may stay Terminating for as long as its
    # node is unreachable.
    return f"-r{attempt}" if attempt else ""


def head_pod_name(job: str, attempt: int = 0) -> str:
    return f"{job}-head{_attempt_suffix(attempt)}"


def worker_pod_name(job: str, index: int, attempt: int = 0) -> str:
    return f"{job}-worker-{index}{_attempt_suffix(attempt)}"


def head_address(job: str, namespace: str) -> str:
    """DNS name of the head pod through its headless Service."""
    return f"{head_service_name(job)}.{namespace}.svc"


def job_labels(job: str) -> dict[str, str]:
    """The label every object of the job carries; selecting on it finds them all."""
    return {Label.JOB: job}


def pod_labels(job: str, role: Role, index: int, attempt: int = 0) -> dict[str, str]:
    return {Label.JOB: job, Label.ROLE: role.value, Label.INDEX: str(index), Label.ATTEMPT: str(attempt)}


def worker_selector(job: str) -> str:
    """Label selector of the job's worker pods, as a string (status.selector, for /scale)."""
    return f"{Label.JOB}={job},{Label.ROLE}={Role.WORKER.value}"
