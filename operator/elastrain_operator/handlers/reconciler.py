"""One reconcile of one job: read the cache -> parse -> decide -> apply -> compute status -> write it once if changed.

No kopf here: the kopf handlers (``handlers.jobs``) call :func:`reconcile_job` with an event sink.
A round reads only the watch-fed :class:`~elastrain_operator.kube.cache.ClusterCache`; its API
requests are its writes. Writes are announced to the cache's expectations first, so no round
decides from a cache that has not yet shown the previous round's writes.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
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
from elastrain_operator.builders.disruption import build_disruption_budget
from elastrain_operator.builders.network import build_network_policy
from elastrain_operator.builders.pods import build_head_pod, build_worker_pod
from elastrain_operator.builders.secret import build_ray_auth_secret
from elastrain_operator.builders.service import build_head_service
from elastrain_operator.handlers import metrics
from elastrain_operator.kube.cache import ClusterCache
from elastrain_operator.kube.client import NOT_FOUND, KubeApi, KubeError
from elastrain_operator.kube.progress import read_progress
from elastrain_operator.reconcile.decide import (
    CreateDisruptionBudget,
    CreateNetworkPolicy,
    CreatePod,
    CreateRayAuthSecret,
    CreateService,
    Decision,
    DeleteJob,
    DeletePod,
    Note,
    decide,
    needed_workers,
)
from elastrain_operator.reconcile.export_request import (
    decide_export_ask,
    export_request_notes,
    export_request_status,
    requested_id,
)
from elastrain_operator.reconcile.leave import (
    DEFAULT_LEAVE_TIMEOUT_SECONDS,
    LeaveMemory,
    decide_leave_gate,
    leave_timed_out_message,
    leaving_ips,
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


#: Rounds of different jobs that may run at once.
ROUND_THREADS = 32


@dataclass
class Writer:
    """What a round writes with: the API, the cache its writes go through, and how many pods it creates at once."""

    api: KubeApi
    cache: ClusterCache
    create_concurrency: int = 16
    #: How long a round that created or deleted objects waits for the cache to show them before its status.
    settle_seconds: float = 2.0
    leaves: dict[tuple[str, str], LeaveMemory] = field(default_factory=dict)
    """Per job, the scale-down's pods waiting for the driver to let their groups go (``reconcile.leave``)."""
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)
    _rounds: ThreadPoolExecutor | None = field(default=None, repr=False)

    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.create_concurrency, thread_name_prefix="elastrain-create")
        return self._pool

    def rounds(self) -> ThreadPoolExecutor:
        """The threads rounds run in: more than asyncio's default (cores + 4), as a round mostly waits on the API."""
        if self._rounds is None:
            self._rounds = ThreadPoolExecutor(ROUND_THREADS, thread_name_prefix="elastrain-round")
        return self._rounds

    def close(self) -> None:
        for pool in (self._pool, self._rounds):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)


def _write_status(writer: Writer, namespace: str, name: str, old: Mapping[str, Any], new: dict[str, Any]) -> bool:
    if dict(old) == new:
        return False
    # Merge patch: keys that disappeared are sent as null so the server removes them.
    patch = {key: new.get(key) for key in {*old, *new}}
    try:
        written = writer.api.patch_job_status(namespace, name, patch)
    except KubeError as err:
        if err.status == NOT_FOUND:
            return False  # deleted since the cache last saw it; its watch event ends the job's loop
        raise
    # The next round must see this status, not the one before it that the watch may still be delivering.
    writer.cache.upsert("TrainingJob", written)
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


def _build(job: TrainingJob, action: object, token: Callable[[], str]) -> dict[str, Any] | None:
    """The object a creating action creates (None for the other actions)."""
    namespace, name, uid = job.metadata.namespace or "", job.metadata.name or "", job.metadata.uid or ""
    if isinstance(action, CreateRayAuthSecret):
        return build_ray_auth_secret(job=name, namespace=namespace, uid=uid, token=token())
    if isinstance(action, CreateNetworkPolicy):
        return build_network_policy(job=name, namespace=namespace, uid=uid)
    if isinstance(action, CreateDisruptionBudget):
        return build_disruption_budget(job=name, namespace=namespace, uid=uid, min_available=needed_workers(job))
    if isinstance(action, CreateService):
        return build_head_service(job=name, namespace=namespace, uid=uid)
    if isinstance(action, CreatePod):
        if action.role is Role.HEAD:
            return build_head_pod(job, action.attempt)
        return build_worker_pod(job, action.index, action.attempt)
    return None


def _create_pod(writer: Writer, action: CreatePod, pod: dict[str, Any], sent: set[tuple[str, str]]) -> None:
    created = _create(writer.api, pod)
    sent.add(("Pod", pod["metadata"]["name"]))
    if created:
        metrics.PODS_CREATED.labels(role=action.role.value).inc()
        if action.attempt:
            metrics.REPLACEMENTS.labels(role=action.role.value).inc()


#: Kinds the operator creates once with the Service and never reads back (not in the cache).
UNWATCHED_KINDS = frozenset({"Secret", "PodDisruptionBudget"})


def _apply(writer: Writer, job: TrainingJob, actions: tuple[object, ...], *, clock: Callable[[], float]) -> bool:
    """Carry out the decision's actions; return True when the job itself was deleted.

    Every creation and deletion is announced to the expectations before it is sent (a watch event
    may come back before the call returns); the Secret, the NetworkPolicy and the Service go first,
    then the pods, up to ``create_concurrency`` at a time.
    """
    namespace, name = job.metadata.namespace or "", job.metadata.name or ""
    key = (namespace, name)
    built = [(action, _build(job, action, lambda: secrets.token_urlsafe(32))) for action in actions]
    creations = {  # what the cache watches (Secrets and PodDisruptionBudgets are created, never read back)
        (obj["kind"], obj["metadata"]["name"])
        for _, obj in built
        if obj is not None and obj["kind"] not in UNWATCHED_KINDS
    }
    deletions = {("Pod", a.name) for a in actions if isinstance(a, DeletePod)}
    writer.cache.expectations.expect(key, creations=creations, deletions=deletions, now=clock())
    sent: set[tuple[str, str]] = set()  # the writes the server accepted (or found done already)
    try:
        for action, obj in built:
            if isinstance(action, DeletePod):
                if writer.api.delete_pod(namespace, action.name):
                    metrics.PODS_DELETED.labels(why=action.why).inc()
                sent.add(("Pod", action.name))
            elif isinstance(action, DeleteJob):
                writer.api.delete_job(namespace, name)
                return True
            elif obj is not None and not isinstance(action, CreatePod):
                _create(writer.api, obj)
                sent.add((obj["kind"], obj["metadata"]["name"]))
        pods = [(a, obj) for a, obj in built if isinstance(a, CreatePod) and obj is not None]
        if len(pods) == 1:
            _create_pod(writer, *pods[0], sent)
        elif pods:
            for future in [writer.pool().submit(_create_pod, writer, a, obj, sent) for a, obj in pods]:
                future.result()  # the first error is raised, after every creation was sent
    finally:
        # A write that failed will never show up; what the cache already shows (the watch was quick,
        # or it existed: 409, or was gone: 404) is met. Either way the job must not wait for it.
        for kind, obj_name in creations:
            if (kind, obj_name) not in sent or writer.cache.holds(kind, namespace, obj_name):
                writer.cache.expectations.observed_present(key, (kind, obj_name))
        for kind, obj_name in deletions:
            if (kind, obj_name) not in sent or writer.cache.terminating_or_gone(namespace, obj_name):
                writer.cache.expectations.observed_gone(key, (kind, obj_name))
    return False


def _clean_up_invalid(writer: Writer, raw: Mapping[str, Any], prior: TrainingJobStatus, now: datetime) -> None:
    """Delete the pods of a job that failed for its spec, and the job itself once its TTL has passed."""
    api = writer.api
    namespace, name = raw["metadata"]["namespace"], raw["metadata"]["name"]
    for pod in writer.cache.observe(namespace, name).pods:
        if pod.active:
            api.delete_pod(namespace, pod.name)
    policy = (raw.get("spec") or {}).get("runPolicy") or {}
    ttl = policy.get("ttlSecondsAfterFinished") if isinstance(policy, Mapping) else None
    done = prior.completion_time
    if isinstance(ttl, int) and done is not None and now >= done + timedelta(seconds=ttl):
        api.delete_job(namespace, name)


#: Reads the driver's progress from a head pod IP (``kube.progress.read_progress``; tests pass their own),
#: with ``export_request=ID`` when a user asked for an export.
ProgressReader = Callable[..., ProgressReport | None]


def _progress(
    observed: Observed, reader: ProgressReader, ask: str | None = None, leave: tuple[str, ...] | None = None
) -> ProgressReport | None:
    """The running head's progress report, if it answers; the poll names a pending export request and
    the pods about to leave."""
    head = observed.head_live()
    if head is None or head.phase != "Running" or not head.ip:
        return None
    asks: dict[str, Any] = {}
    if ask is not None:
        asks["export_request"] = ask
    if leave is not None:
        asks["leave"] = leave
    return reader(head.ip, **asks)


def _gate_leaves(
    writer: Writer,
    job: TrainingJob,
    decision: Decision,
    observed: Observed,
    *,
    poll: Callable[[tuple[str, ...] | None], ProgressReport | None],
    events: EventSink,
    now: datetime,
) -> tuple[Decision, ProgressReport | None, bool]:
    """Hold the scale-down's deletions until the driver let the pods' groups go (``reconcile.leave``).

    Returns the decision without the held deletions, the report if the head was polled, and whether it was.
    """
    key = (job.metadata.namespace or "", job.metadata.name or "")
    memory = writer.leaves.get(key, LeaveMemory())
    graceful = {a.name for a in decision.actions if isinstance(a, DeletePod) and a.graceful}
    leavers = [p for p in observed.workers if p.name in graceful]
    if not leavers and not memory.asked:
        return decision, None, False
    ips = leaving_ips(leavers)
    report = poll(ips)  # an empty set, once, tells the driver that nobody leaves any more
    elastic = job.spec.elastic
    timeout = elastic.leave_timeout_seconds if elastic is not None else DEFAULT_LEAVE_TIMEOUT_SECONDS
    gate = decide_leave_gate(
        leavers,
        head_answers=report is not None and timeout > 0,
        left=report.left if report is not None else (),
        asked_since=memory.since,
        now=now,
        timeout_seconds=timeout,
    )
    writer.leaves[key] = LeaveMemory(since=gate.asked_since, asked=ips)
    if gate.timed_out:
        events("Warning", Reason.LEAVE_TIMED_OUT, leave_timed_out_message(gate.timed_out, timeout))
    if not gate.hold:
        return decision, report, True
    kept = tuple(a for a in decision.actions if not (isinstance(a, DeletePod) and a.name in gate.hold))
    return replace(decision, actions=kept), report, True


def reconcile_job(
    writer: Writer,
    namespace: str,
    name: str,
    events: EventSink,
    now: datetime | None = None,
    *,
    progress: ProgressReader = read_progress,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Bring one job's pods and status in line with its spec; False once the job is no longer in the cache.

    A round whose job still awaits the cache's view of its last writes does nothing: the watch
    events it waits for wake the job again.
    """
    now = now or utcnow()
    cache, key = writer.cache, (namespace, name)
    raw = cache.job(namespace, name)
    if raw is None:
        metrics.record_phase(namespace, name, None)
        cache.expectations.forget(key)
        return False
    if not cache.expectations.satisfied(key, now=clock()):
        metrics.ROUNDS.labels(result="waiting").inc()
        return True
    old_status: Mapping[str, Any] = raw.get("status") or {}
    prior = _prior_status(raw)
    generation = raw.get("metadata", {}).get("generation")
    if prior is not None and prior.phase is not None and prior.phase.is_terminal and _is_invalid(prior):
        # Failed for its spec: only clean-up remains (as for Kubernetes Jobs, a fixed spec is a new job).
        _clean_up_invalid(writer, raw, prior, now)
        metrics.ROUNDS.labels(result="invalid").inc()
        return True
    prior_export = prior.export_request if prior is not None else None
    try:
        job = parse_trainingjob(raw)
        observed = cache.observe(namespace, name)
        decision = decide(job, prior, observed, now)
        ask = decide_export_ask(
            requested_id(raw.get("metadata", {}).get("annotations")),
            has_export=job.spec.export is not None,
            prior=prior_export,
        )
        decision, report, polled = _gate_leaves(
            writer,
            job,
            decision,
            observed,
            poll=lambda leave: _progress(observed, progress, ask.ask, leave),
            events=events,
            now=now,
        )
        if _apply(writer, job, decision.actions, clock=clock):
            metrics.record_phase(namespace, name, None)
            return False
    except (InvalidTrainingJobError, SpecRejectedError) as err:
        status = invalid_status(prior, str(err), now=now, generation=generation)
        if _write_status(writer, namespace, name, old_status, _dump(status)):
            events("Warning", Reason.INVALID_SPEC, str(err))
        metrics.record_phase(namespace, name, status.phase)
        metrics.ROUNDS.labels(result="invalid").inc()
        return True
    if decision.actions:
        # The status reflects the pods as they are after this round's changes: the watch shows them
        # within milliseconds; a round that changed nothing (most of them) reuses what it saw.
        cache.expectations.wait(key, timeout=writer.settle_seconds)
        observed = cache.observe(namespace, name)
    if not polled:
        report = _progress(observed, progress, ask.ask)
    status = compute_status(job, prior, decision, observed, now, report=report)
    status = status.model_copy(update={"export_request": export_request_status(prior_export, ask, report)})
    _write_status(writer, namespace, name, old_status, _dump(status))
    metrics.record_round(namespace, name, decision=decision, status=status, prior=prior, now=now)
    for note in transition_notes(prior, decision, status):
        events(note.type, note.reason, note.message)
    for kind, reason, message in export_request_notes(prior_export, status.export_request):
        events(kind, reason, message)
    metrics.record_phase(namespace, name, status.phase)
    metrics.ROUNDS.labels(result="acted" if decision.actions else "steady").inc()
    return True


__all__ = ["EventSink", "Note", "Writer", "reconcile_job", "utcnow"]
