"""Prometheus metrics of the operator, served on /metrics (ELASTRAIN_METRICS_PORT)."""

from __future__ import annotations

import functools
import threading

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from elastrain_operator.api import JobPhase

JOBS = Gauge("elastrain_jobs", "TrainingJobs handled by this operator, by phase", ["phase"])
RECONCILE_SECONDS = Histogram("elastrain_reconcile_duration_seconds", "Time of one reconcile of one job")
PODS_CREATED = Counter("elastrain_pods_created_total", "Pods created by the operator", ["role"])
PODS_DELETED = Counter("elastrain_pods_deleted_total", "Pods deleted by the operator", ["why"])
HANDLER_ERRORS = Counter("elastrain_handler_errors_total", "Reconciles that raised an error", ["error"])

_lock = threading.Lock()
_phases: dict[tuple[str, str], JobPhase] = {}


def record_phase(namespace: str, name: str, phase: JobPhase | None) -> None:
    """Remember a job's phase (None: forget the job) and refresh the by-phase gauge."""
    with _lock:
        if phase is None:
            _phases.pop((namespace, name), None)
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
