"""Prometheus metrics of the operator, served on /metrics (ELASTRAIN_METRICS_PORT)."""

from __future__ import annotations

import functools
import threading
import time
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from elastrain_operator.api import JobPhase, Role, TrainingJobStatus
from elastrain_operator.reconcile.decide import Decision

JOBS = Gauge("elastrain_jobs", "TrainingJobs handled by this operator, by phase", ["phase"])
RECONCILE_SECONDS = Histogram(
    "elastrain_reconcile_duration_seconds",
    "Time of one reconcile of one job",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PODS_CREATED = Counter("elastrain_pods_created_total", "Pods created by the operator", ["role"])
PODS_DELETED = Counter("elastrain_pods_deleted_total", "Pods deleted by the operator", ["why"])
REPLACEMENTS = Counter("elastrain_replacements_total", "Pods created to replace a failed or lost pod", ["role"])
WORKERS_LOST = Counter("elastrain_workers_lost_total", "Pods found on a NotReady or deleted node")
RESIZES = Counter("elastrain_resizes_total", "Changes of a job's number of ready workers", ["reason"])
LOSS_TO_REPLACEMENT = Histogram(
    "elastrain_loss_to_replacement_seconds",
    "From a node leaving Ready to the replacement of its pods being created",
    buckets=(0.0, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
REDUCED_SIZE_SECONDS = Counter(
    "elastrain_reduced_size_seconds_total", "Seconds jobs trained with fewer ready workers than desired"
)
ROUNDS = Counter(
    "elastrain_rounds_total",
    "Reconcile rounds: acted (created or deleted), steady (nothing to do), waiting (for the cache), invalid",
    ["result"],
)
HANDLER_ERRORS = Counter("elastrain_handler_errors_total", "Reconciles that raised an error", ["error"])

_lock = threading.Lock()
_phases: dict[tuple[str, str], JobPhase] = {}


_last_round: dict[tuple[str, str], float] = {}
"""time.monotonic() of each job's last round: status times carry whole seconds, too coarse here."""


def record_round(
    namespace: str,
    name: str,
    *,
    decision: Decision,
    status: TrainingJobStatus,
    prior: TrainingJobStatus | None,
    now: datetime,
) -> None:
    """Count what one reconcile round did: losses, resizes, and time spent below the desired size."""
    for pod in decision.lost:
        if pod.role is Role.WORKER:
            WORKERS_LOST.inc()
        # The replacement is created in the round that finds the loss (see reconcile.decide).
        if pod.lost_since is not None:
            LOSS_TO_REPLACEMENT.observe(max(0.0, (now - pod.lost_since).total_seconds()))
    # A round appends at most one resize record (the list is capped, so its length says nothing).
    before = list(prior.resizes or []) if prior is not None else []
    after = list(status.resizes or [])
    if after and after != before:
        RESIZES.labels(reason=after[-1].reason).inc()
    key = (namespace, name)
    clock = time.monotonic()
    with _lock:
        last = _last_round.get(key)
        _last_round[key] = clock
    workers = status.workers
    training = status.phase in (JobPhase.RUNNING, JobPhase.RESCALING)
    if last is not None and training and workers is not None and workers.ready < workers.desired:
        REDUCED_SIZE_SECONDS.inc(clock - last)


def record_phase(namespace: str, name: str, phase: JobPhase | None) -> None:
    """Remember a job's phase (None: forget the job) and refresh the by-phase gauge."""
    with _lock:
        if phase is None:
            _phases.pop((namespace, name), None)
            _last_round.pop((namespace, name), None)
        else:
            _phases[(namespace, name)] = phase
        for value in JobPhase:
            JOBS.labels(phase=value.value).set(sum(1 for p in _phases.values() if p is value))


@functools.cache
def _start_server(port: int) -> None:
    start_http_server(port, addr="0.0.0.0")  # scraped from other pods


def serve(port: int) -> None:
    """Start the /metrics endpoint (once per process and port: kopf may rerun its startup handlers)."""
    if port:
        _start_server(port)
