"""kopf handlers: one asyncio loop per TrainingJob runs the reconcile; pod and job events wake it early.

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

from elastrain_operator.api import API_VERSION, GROUP, KIND, PLURAL, VERSION, Label
from elastrain_operator.handlers import metrics
from elastrain_operator.handlers.reconciler import reconcile_job
from elastrain_operator.kube.client import KubeApi, KubeError, load_kube_config
from elastrain_operator.kube.convert import running_but_not_ready
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
    """Few log events (ours are explicit), the API client, metrics."""
    ours = load_settings()
    # Only event handlers are used: kopf keeps no handler progress and adds no finalizer to jobs.
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


# One reconcile loop per job, started by the job's first event. Touched only from kopf's event loop.
_loops: dict[tuple[str, str], asyncio.Task[None]] = {}


async def _run_job(namespace: str, name: str, ref: kopf.Body, memo: kopf.Memo, logger: kopf.Logger) -> None:
    """Reconcile the job until it is gone.

    A plain asyncio task rather than a kopf daemon: kopf puts a finalizer on every object with a
    daemon, and a finalizer makes deleting a job hang whenever the operator is not running. Deleting
    a job needs nothing from the operator here: owner references let the garbage collector remove
    its pods, Service and NetworkPolicy. Each reconcile runs in a worker thread only while it works.
    """
    settings: OperatorSettings = memo.settings
    api: KubeApi = memo.api
    wake = _wakeup(namespace, name)

    def post(kind: str, reason: str, message: str) -> None:
        kopf.event(ref, type=kind, reason=reason, message=message)

    exists = True
    while exists:
        wake.clear()
        start = time.monotonic()
        try:
            exists = await asyncio.to_thread(reconcile_job, api, namespace, name, post)
        except KubeError as err:
            # Transient API trouble: logged and retried on the next pass.
            metrics.HANDLER_ERRORS.labels(error="KubeError").inc()
            logger.warning("reconcile of %s/%s failed, retrying: %s", namespace, name, err)
        except Exception as err:  # one job's bug must not stop the others
            metrics.HANDLER_ERRORS.labels(error=type(err).__name__).inc()
            logger.exception("reconcile of %s/%s raised; retrying", namespace, name)
        finally:
            metrics.RECONCILE_SECONDS.observe(time.monotonic() - start)
        if exists:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=settings.resync_seconds)
    _wakeups.pop((namespace, name), None)
    _loops.pop((namespace, name), None)
    metrics.record_phase(namespace, name, None)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def job_changed(
    *, name: str, namespace: str | None, body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Any event of a job (listing at start-up, creation, scale, suspend) wakes its loop, or starts it."""
    key = (namespace or "", name)
    _wakeup(*key).set()
    if key not in _loops:
        meta = body.get("metadata", {})
        # The object reference Events need, kept apart from kopf's live body.
        ref = kopf.Body(
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {"name": name, "namespace": key[0], "uid": str(meta.get("uid", ""))},
            }
        )
        _loops[key] = asyncio.create_task(_run_job(key[0], name, ref, memo, logger), name=f"elastrain-{key}")


@kopf.on.cleanup()
async def stop_loops(**_: Any) -> None:
    """The operator is stopping: end every job's loop (a restarted operator picks them up again)."""
    tasks = list(_loops.values())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    _loops.clear()
    _wakeups.clear()


@kopf.on.event("", "v1", "pods", labels={Label.JOB: kopf.PRESENT})
async def pod_changed(
    *, namespace: str | None, labels: kopf.Labels, status: kopf.Status, memo: kopf.Memo, **_: Any
) -> None:
    """A pod of a job changed: wake that job's loop.

    A running pod that stopped being Ready is what the node lifecycle controller does to every pod
    of a node it just marked NotReady: the shared node list may predate that, so it is listed afresh
    for the round this event wakes, and the lost worker is replaced in this round, not a resync later.
    """
    api = getattr(memo, "api", None)
    if isinstance(api, KubeApi) and running_but_not_ready(status):
        api.forget_nodes()
    _wakeup(namespace or "", labels[Label.JOB]).set()
