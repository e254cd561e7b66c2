"""One reconcile of one job: fetch -> parse -> decide -> apply -> compute status -> write it once if changed.

No kopf here: the kopf handlers (``handlers.jobs``) call :func:`reconcile_job` with an event sink.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from elastrain_operator.api import (
    InvalidTrainingJobError,
    Reason,
    Role,
    TrainingJob,
    TrainingJobStatus,
    parse_trainingjob,
)
from elastrain_operator.builders.network import build_network_policy
from elastrain_operator.builders.pods import build_head_pod, build_worker_pod
from elastrain_operator.builders.secret import build_ray_auth_secret
from elastrain_operator.builders.service import build_head_service
from elastrain_operator.handlers import metrics
from elastrain_operator.kube.client import KubeApi, KubeError
from elastrain_operator.kube.progress import read_progress
from elastrain_operator.reconcile.decide import (
    CreateNetworkPolicy,
    CreatePod,
    CreateRayAuthSecret,
    CreateService,
    DeleteJob,
    DeletePod,
    Note,
    decide,
)
from elastrain_operator.reconcile.observed import Observed
from elastrain_operator.reconcile.status import compute_status, invalid_status, transition_notes
from elastrain_trainer.config.progress import ProgressReport

#: Receives the Events of a reconcile: (type, reason, message).
EventSink = Callable[[str, str, str], None]
log = logging.getLogger(__name__)


def utcnow() -> datetime:
    """Now, to the second (Kubernetes timestamps carry no fractions)."""
    return datetime.now(UTC).replace(microsecond=0)


def _prior_status(raw: Mapping[str, Any]) -> TrainingJobStatus | None:
    try:
        return TrainingJobStatus.model_validate(raw.get("status") or {})
    except ValidationError:
        log.warning("ignoring an unreadable status of %s", raw.get("metadata", {}).get("name"))
        return None


def _is_invalid(status: TrainingJobStatus) -> bool:
    return any(c.type == "Failed" and c.reason == Reason.INVALID_SPEC for c in status.conditions or [])


def _dump(status: TrainingJobStatus) -> dict[str, Any]:
    dumped: dict[str, Any] = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def _write_status(api: KubeApi, namespace: str, name: str, old: Mapping[str, Any], new: dict[str, Any]) -> bool:
    if dict(old) == new:
        return False
    # Merge patch: keys that disappeared are sent as null so the server removes them.
    patch = {key: new.get(key) for key in {*old, *new}}
    api.patch_job_status(namespace, name, patch)
    return True


#: HTTP statuses with which the API server refuses an object built from the user's spec (invalid field,
#: admission denied: a missing PriorityClass or ServiceAccount): retrying cannot help, the spec must change.
REJECTED_BY_SERVER = frozenset({400, 403, 422})


class SpecRejectedError(ValueError):
    """The API server refused an object built from the spec; the message says which and why."""


def _create(api: KubeApi, obj: dict[str, Any]) -> bool:
    try:
        return api.create(obj)
    except KubeError as err:
        if err.status in REJECTED_BY_SERVER:
            raise SpecRejectedError(
                f"the API server rejected {obj['kind']} {obj['metadata']['name']} built from the spec "
                f"(check spec.pod and spec.scheduling): {err}"
            ) from err
        raise


def _apply(api: KubeApi, job: TrainingJob, actions: tuple[object, ...]) -> bool:
    """Carry out the decision's actions; return True when the job itself was deleted."""
    namespace, name, uid = job.metadata.namespace or "", job.metadata.name or "", job.metadata.uid or ""
    for action in actions:
        if isinstance(action, DeletePod):
            if api.delete_pod(namespace, action.name):
                metrics.PODS_DELETED.labels(why=action.why).inc()
        elif isinstance(action, CreateRayAuthSecret):
            token = secrets.token_urlsafe(32)
            _create(api, build_ray_auth_secret(job=name, namespace=namespace, uid=uid, token=token))
        elif isinstance(action, CreateNetworkPolicy):
            _create(api, build_network_policy(job=name, namespace=namespace, uid=uid))
        elif isinstance(action, CreateService):
            _create(api, build_head_service(job=name, namespace=namespace, uid=uid))
        elif isinstance(action, CreatePod):
            if action.role is Role.HEAD:
                pod = build_head_pod(job, action.attempt)
            else:
                pod = build_worker_pod(job, action.index, action.attempt)
            if _create(api, pod):
                metrics.PODS_CREATED.labels(role=action.role.value).inc()
                if action.attempt:
                    metrics.REPLACEMENTS.labels(role=action.role.value).inc()
        elif isinstance(action, DeleteJob):
            api.delete_job(namespace, name)
            return True
    return False


def _clean_up_invalid(api: KubeApi, raw: Mapping[str, Any], prior: TrainingJobStatus, now: datetime) -> None:
    """Delete the pods of a job that failed for its spec, and the job itself once its TTL has passed."""
    namespace, name = raw["metadata"]["namespace"], raw["metadata"]["name"]
    for pod in api.observe(namespace, name).pods:
        if pod.active:
            api.delete_pod(namespace, pod.name)
    policy = (raw.get("spec") or {}).get("runPolicy") or {}
    ttl = policy.get("ttlSecondsAfterFinished") if isinstance(policy, Mapping) else None
    done = prior.completion_time
    if isinstance(ttl, int) and done is not None and now >= done + timedelta(seconds=ttl):
        api.delete_job(namespace, name)


#: Reads the driver's progress from a head pod IP (``kube.progress.read_progress``; tests pass their own).
ProgressReader = Callable[[str], ProgressReport | None]


def _progress(observed: Observed, reader: ProgressReader) -> ProgressReport | None:
    """The running head's progress report, if it answers."""
    head = observed.head_live()
    if head is None or head.phase != "Running" or not head.ip:
        return None
    return reader(head.ip)


def reconcile_job(
    api: KubeApi,
    namespace: str,
    name: str,
    events: EventSink,
    now: datetime | None = None,
    *,
    progress: ProgressReader = read_progress,
) -> bool:
    """Bring one job's pods and status in line with its spec; False once the job no longer exists."""
    now = now or utcnow()
    raw = api.get_job(namespace, name)
    if raw is None:
        metrics.record_phase(namespace, name, None)
        return False
    old_status: Mapping[str, Any] = raw.get("status") or {}
    prior = _prior_status(raw)
    generation = raw.get("metadata", {}).get("generation")
    if prior is not None and prior.phase is not None and prior.phase.is_terminal and _is_invalid(prior):
        # Failed for its spec: only clean-up remains (as for Kubernetes Jobs, a fixed spec is a new job).
        _clean_up_invalid(api, raw, prior, now)
        return True
    try:
        job = parse_trainingjob(raw)
        observed = api.observe(namespace, name)
        decision = decide(job, prior, observed, now)
        if _apply(api, job, decision.actions):
            metrics.record_phase(namespace, name, None)
            return False
    except (InvalidTrainingJobError, SpecRejectedError) as err:
        status = invalid_status(prior, str(err), now=now, generation=generation)
        if _write_status(api, namespace, name, old_status, _dump(status)):
            events("Warning", Reason.INVALID_SPEC, str(err))
        metrics.record_phase(namespace, name, status.phase)
        return True
    if decision.actions:
        # The status reflects the pods as they are after this round's changes; a round that changed
        # nothing (most of them) reuses what it saw.
        observed = api.observe(namespace, name)
    status = compute_status(job, prior, decision, observed, now, report=_progress(observed, progress))
    _write_status(api, namespace, name, old_status, _dump(status))
    metrics.record_round(namespace, name, decision=decision, status=status, prior=prior, now=now)
    for note in transition_notes(prior, decision, status):
        events(note.type, note.reason, note.message)
    metrics.record_phase(namespace, name, status.phase)
    return True


__all__ = ["EventSink", "Note", "reconcile_job", "utcnow"]
