"""kopf handlers: one daemon per TrainingJob runs the reconcile loop; pod and job events wake it early.

Level-based: each pass of :func:`reconcile_job` reads the job and its pods afresh, so a missed
event or an operator restart costs at most one resync period, and a restarted operator converges
to the same objects (names are deterministic, creation is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import kopf

from elastrain_operator.api import GROUP, PLURAL, VERSION, Label
from elastrain_operator.handlers import metrics
from elastrain_operator.handlers.reconciler import reconcile_job
from elastrain_operator.kube.client import KubeApi, KubeError, load_kube_config
from elastrain_operator.settings import OperatorSettings, load_settings

# Touched only from kopf's event loop (every handler here is async), so no lock is needed.
_wakeups: dict[tuple[str, str], asyncio.Event] = {}


def _wakeup(namespace: str, name: str) -> asyncio.Event:
    return _wakeups.setdefault((namespace, name), asyncio.Event())


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the service account; elsewhere: $KUBECONFIG as it is now (the client library reads it at import)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
def configure(*, settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Progress in annotations (the status belongs to elastrain), few log events, the API client, metrics."""
    ours = load_settings()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 60
    load_kube_config()
    memo.settings = ours
    memo.api = KubeApi()
    metrics.serve(ours.metrics_port)
    logger.info(
        "elastrain operator started: namespaces=%s metrics port=%s", ours.namespaces or "all", ours.metrics_port
    )


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def run_job(
    *,
    name: str,
    namespace: str | None,
    body: kopf.Body,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Reconcile the job until it is deleted (or the operator stops).

    Async on purpose: a sync daemon would hold one of kopf's few executor threads for the job's whole
    life, so a handful of jobs would starve all others. Each reconcile runs in a thread only while
    it works.
    """
    settings: OperatorSettings = memo.settings
    api: KubeApi = memo.api
    namespace = namespace or ""
    wake = _wakeup(namespace, name)

    def post(kind: str, reason: str, message: str) -> None:
        kopf.event(body, type=kind, reason=reason, message=message)

    while not stopped:
        wake.clear()
        start = time.monotonic()
        try:
            await asyncio.to_thread(reconcile_job, api, namespace, name, post)
        except KubeError as err:
            # Transient API trouble: logged and retried on the next pass.
            metrics.HANDLER_ERRORS.labels(error="KubeError").inc()
            logger.warning("reconcile of %s/%s failed, retrying: %s", namespace, name, err)
        except Exception as err:  # one job's bug must not stop the others
            metrics.HANDLER_ERRORS.labels(error=type(err).__name__).inc()
            logger.exception("reconcile of %s/%s raised; retrying", namespace, name)
        finally:
            metrics.RECONCILE_SECONDS.observe(time.monotonic() - start)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=settings.resync_seconds)
    _wakeups.pop((namespace, name), None)
    metrics.record_phase(namespace, name, None)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def job_changed(*, name: str, namespace: str | None, **_: Any) -> None:
    """A spec change (scale, suspend) wakes the job's loop."""
    _wakeup(namespace or "", name).set()


@kopf.on.event("", "v1", "pods", labels={Label.JOB: kopf.PRESENT})
async def pod_changed(*, namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
    """A pod of a job changed: wake that job's loop."""
    _wakeup(namespace or "", labels[Label.JOB]).set()
