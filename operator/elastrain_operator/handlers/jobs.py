"""kopf handlers: one asyncio loop per TrainingJob runs the reconcile; watch events wake it early.

State comes from watches, not polling: informers (``kube.informer``) list and watch the jobs, their
pods, Services and NetworkPolicies and the nodes into one :class:`ClusterCache`, and every change
wakes the rounds of the jobs it concerns (a node's change: the jobs with pods on it). A round reads
only that cache (``handlers.reconciler``); the API server sees its writes and nothing else.
Level-based all the same: each round looks at the whole job as the cache has it, so a restarted
operator converges to the same objects (names are deterministic, creation is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import kopf

from elastrain_operator.api import API_VERSION, GROUP, KIND, PLURAL, VERSION
from elastrain_operator.handlers import metrics
from elastrain_operator.handlers.reconciler import Writer, reconcile_job
from elastrain_operator.kube.cache import ClusterCache
from elastrain_operator.kube.client import KubeApi, KubeError, load_kube_config
from elastrain_operator.kube.informer import Informers
from elastrain_operator.settings import OperatorSettings, load_settings

# Touched only from kopf's event loop (every handler here is async), so no lock is needed.
_wakeups: dict[tuple[str, str], asyncio.Event] = {}
#: Set when a job is woken by a loss (a node's health, a pod failing or gone): its next round starts at once.
_urgent: dict[tuple[str, str], asyncio.Event] = {}


def _urgency(namespace: str, name: str) -> asyncio.Event:
    return _urgent.setdefault((namespace, name), asyncio.Event())


#: Other wake-ups (pods starting, becoming Ready, spec changes) wait this long, so that one round sees
#: a burst of them together (every pod of a job turning Ready) rather than one round per pod.
BATCH_SECONDS = 0.2


def _wakeup(namespace: str, name: str) -> asyncio.Event:
    return _wakeups.setdefault((namespace, name), asyncio.Event())


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the service account; elsewhere: $KUBECONFIG as it is now (the client library reads it at import)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


def _wake_jobs(loop: asyncio.AbstractEventLoop) -> Callable[[set[tuple[str, str]], bool], None]:
    """The cache's listener: called from an informer thread, sets the jobs' wake-ups on the event loop."""

    def wake(jobs: set[tuple[str, str]], urgent: bool) -> None:
        def set_all() -> None:
            for key in jobs:
                if urgent:
                    _urgency(*key).set()
                _wakeup(*key).set()

        with contextlib.suppress(RuntimeError):  # the loop closed while the operator stops
            loop.call_soon_threadsafe(set_all)

    return wake


@kopf.on.startup()
async def configure(*, settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Few log events (ours are explicit), the API client, the watch-fed cache, metrics."""
    ours = load_settings()
    # Only event handlers are used: kopf keeps no handler progress and adds no finalizer to jobs.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.posting.level = logging.WARNING
    load_kube_config()
    memo.settings = ours
    # kopf's own watch of jobs is renewed as seldom as the cache's watches: an idle operator asks nothing.
    settings.watching.server_timeout = ours.watch_seconds
    api = KubeApi()
    cache = ClusterCache()
    cache.add_listener(_wake_jobs(asyncio.get_running_loop()))
    memo.api = api
    memo.cache = cache
    memo.writer = Writer(api, cache, create_concurrency=ours.create_concurrency)
    memo.informers = Informers(api, cache, namespaces=ours.namespaces, watch_seconds=ours.watch_seconds)
    memo.informers.start()
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
    writer: Writer = memo.writer
    wake = _wakeup(namespace, name)
    # A round before every kind was listed once would see a partial cluster (and create what exists).
    while not await asyncio.to_thread(writer.cache.wait_synced, 5.0):
        logger.info("waiting for the cache to list the cluster before reconciling %s/%s", namespace, name)

    def post(kind: str, reason: str, message: str) -> None:
        kopf.event(ref, type=kind, reason=reason, message=message)

    exists = True
    while exists:
        wake.clear()
        start = time.monotonic()
        try:
            # Run with this task's context, as asyncio.to_thread would: kopf.event needs kopf's context variables.
            context = contextvars.copy_context()
            exists = await asyncio.get_running_loop().run_in_executor(
                writer.rounds(), functools.partial(context.run, reconcile_job, writer, namespace, name, post)
            )
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
            urgency = _urgency(namespace, name)
            if wake.is_set() and not urgency.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(urgency.wait(), timeout=BATCH_SECONDS)
            urgency.clear()
    _wakeups.pop((namespace, name), None)
    _urgent.pop((namespace, name), None)
    _loops.pop((namespace, name), None)
    metrics.record_phase(namespace, name, None)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def job_changed(
    *,
    type: str | None,
    name: str,
    namespace: str | None,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Any event of a job (listing at start-up, creation, scale, suspend) wakes its loop, or starts it.

    kopf's watch decides which jobs this operator serves (its namespaces); what it saw also goes
    into the cache, which keeps the newer of its and the informer's version, so a loop never starts
    on a job the cache has not seen yet.
    """
    cache: ClusterCache | None = getattr(memo, "cache", None)
    if cache is not None:
        if type == "DELETED":
            cache.delete("TrainingJob", body)
        else:
            cache.upsert("TrainingJob", body)
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
async def stop_loops(memo: kopf.Memo, **_: Any) -> None:
    """The operator is stopping: end every job's loop and the informers (a restarted operator picks them up again)."""
    tasks = list(_loops.values())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    _loops.clear()
    _wakeups.clear()
    _urgent.clear()
    informers: Informers | None = getattr(memo, "informers", None)
    if informers is not None:
        await asyncio.to_thread(informers.stop)
    writer: Writer | None = getattr(memo, "writer", None)
    if writer is not None:
        writer.close()
