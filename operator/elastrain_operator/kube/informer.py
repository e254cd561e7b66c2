"""Informers: list, then watch, one kind of object into the :class:`~elastrain_operator.kube.cache.ClusterCache`.

The Go reflector in a thread: list (the cache's store for the kind becomes exactly what the
server has), then watch from that list's resourceVersion with bookmarks. A watch that ends (its
``timeout_seconds``, a dropped connection, an API server restart) resumes from the last
resourceVersion it saw; one the server has expired (410 Gone) lists again, so deletions missed
meanwhile are caught by the re-list. Raw JSON all the way: no client models are built, objects
are trimmed as they enter the cache.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines
from prometheus_client import Counter, Gauge

from elastrain_operator.api import GROUP, PLURAL, VERSION, Label
from elastrain_operator.kube.cache import ClusterCache, Kind
from elastrain_operator.kube.client import KubeApi

log = logging.getLogger(__name__)

GONE = 410
WATCH_EVENTS = Counter("elastrain_watch_events_total", "Watch events received, by kind and type", ["kind", "type"])
RELISTS = Counter("elastrain_watch_relists_total", "Full lists of a kind (start-up, 410 Gone, error)", ["kind", "why"])
CACHE_OBJECTS = Gauge("elastrain_cache_objects", "Objects in the operator's watch-fed cache, by kind", ["kind"])

#: Lists or watches one kind: (watch?, resourceVersion or None, timeout seconds) -> the raw HTTP response.
Request = Callable[..., Any]


@dataclass(frozen=True)
class Source:
    """What an informer watches: a kind and the list function of its client (namespaced or not)."""

    kind: Kind
    request: Request
    namespace: str | None = None
    """The namespace it lists (None: all namespaces, or a cluster-scoped kind)."""


def sources(api: KubeApi, namespace: str | None) -> list[Source]:
    """The kinds the operator reconciles from, in ``namespace`` (None: every namespace); nodes always cluster-wide."""
    selector = Label.JOB
    if namespace is None:

        def jobs(**kw: Any) -> Any:
            return api.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kw)

        def pods(**kw: Any) -> Any:
            return api.core.list_pod_for_all_namespaces(label_selector=selector, **kw)

        def services(**kw: Any) -> Any:
            return api.core.list_service_for_all_namespaces(label_selector=selector, **kw)

        def policies(**kw: Any) -> Any:
            return api.networking.list_network_policy_for_all_namespaces(label_selector=selector, **kw)

    else:
        ns = namespace

        def jobs(**kw: Any) -> Any:
            return api.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, **kw)

        def pods(**kw: Any) -> Any:
            return api.core.list_namespaced_pod(ns, label_selector=selector, **kw)

        def services(**kw: Any) -> Any:
            return api.core.list_namespaced_service(ns, label_selector=selector, **kw)

        def policies(**kw: Any) -> Any:
            return api.networking.list_namespaced_network_policy(ns, label_selector=selector, **kw)

    def nodes(**kw: Any) -> Any:
        return api.core.list_node(**kw)

    return [
        Source("TrainingJob", jobs, namespace),
        Source("Pod", pods, namespace),
        Source("Service", services, namespace),
        Source("NetworkPolicy", policies, namespace),
        Source("Node", nodes),
    ]


class Informer:
    """One kind, listed and watched into the cache by a daemon thread until :meth:`stop`."""

    def __init__(
        self, source: Source, cache: ClusterCache, *, watch_seconds: int = 300, retry_seconds: float = 1.0
    ) -> None:
        self.source = source
        self.cache = cache
        self.watch_seconds = watch_seconds
        self.retry_seconds = retry_seconds
        self.resource_version: str | None = None
        """The last resourceVersion seen (None: the next pass lists)."""
        self._stopped = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name=f"elastrain-informer-{source.kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopped.set()
        self.interrupt()
        self._thread.join(timeout)

    def relist(self) -> None:
        """Drop the watch and list again (what a 410 Gone does; also a way to force it)."""
        self.resource_version = None
        self.interrupt()

    def interrupt(self) -> None:
        """End the current watch request (the next one resumes from the last resourceVersion)."""
        response = self._response
        if response is not None:
            try:
                # shutdown() unblocks a read in progress in the informer's thread; close() alone would not.
                response.shutdown()
                response.close()
            except Exception:
                log.debug("closing the %s watch raised", self.source.kind, exc_info=True)

    def _run(self) -> None:
        why = "start"
        while not self._stopped.is_set():
            try:
                if self.resource_version is None:
                    self._list(why)
                self._watch()
                why = "error"
            except _ExpiredError:
                log.info("the %s watch expired (410 Gone): listing again", self.source.kind)
                self.resource_version, why = None, "expired"
            except Exception as err:
                if self._stopped.is_set():
                    return
                if isinstance(err, ApiException) and err.status == GONE:
                    self.resource_version, why = None, "expired"
                    continue
                why = "error"
                log.warning("%s informer: %s; retrying in %.1fs", self.source.kind, err, self.retry_seconds)
                self._stopped.wait(self.retry_seconds)

    def _list(self, why: str) -> None:
        response = self.source.request(_preload_content=False, _request_timeout=60)
        listed = json.loads(response.data)
        RELISTS.labels(kind=self.source.kind, why=why).inc()
        self.cache.replace(self.source.kind, listed.get("items") or [], self.source.namespace)
        self.resource_version = str((listed.get("metadata") or {}).get("resourceVersion") or "") or None
        CACHE_OBJECTS.labels(kind=self.source.kind).set(self.cache.sizes().counts[self.source.kind])

    def _watch(self) -> None:
        response = self.source.request(
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_seconds,
            _preload_content=False,
            _request_timeout=(30, self.watch_seconds + 30),
        )
        self._response = response
        try:
            for event in _events(response):
                if self._stopped.is_set():
                    return
                self._apply(event)
        finally:
            self._response = None
            response.release_conn()

    def _apply(self, event: dict[str, Any]) -> None:
        kind, kind_of_event, obj = self.source.kind, str(event.get("type")), event.get("object") or {}
        WATCH_EVENTS.labels(kind=kind, type=kind_of_event).inc()
        if kind_of_event == "ERROR":
            if obj.get("code") == GONE:
                raise _ExpiredError
            raise RuntimeError(f"watch of {kind} answered an error: {obj.get('message')}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind_of_event in ("ADDED", "MODIFIED"):
            self.cache.upsert(kind, obj)
        elif kind_of_event == "DELETED":
            self.cache.delete(kind, obj)
        if version:
            self.resource_version = str(version)
        CACHE_OBJECTS.labels(kind=kind).set(self.cache.sizes().counts[kind])


class _ExpiredError(Exception):
    """The server no longer has the resourceVersion the watch resumed from."""


def _events(response: Any) -> Iterator[dict[str, Any]]:
    for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
        event: dict[str, Any] = json.loads(line)
        yield event


class Informers:
    """Every informer the operator runs; started together, stopped together."""

    def __init__(self, api: KubeApi, cache: ClusterCache, *, namespaces: tuple[str, ...], watch_seconds: int) -> None:
        found: list[Source] = []
        for namespace in namespaces or (None,):
            found += [s for s in sources(api, namespace) if s.kind != "Node"]
        found += [s for s in sources(api, None) if s.kind == "Node"]
        cache.expect_sources((s.kind, s.namespace) for s in found)
        self.informers = [Informer(s, cache, watch_seconds=watch_seconds) for s in found]

    def start(self) -> None:
        for informer in self.informers:
            informer.start()

    def stop(self) -> None:
        for informer in self.informers:
            informer._stopped.set()
            informer.interrupt()
        for informer in self.informers:
            informer.stop(timeout=1.0)  # daemon threads: one still blocked ends with its watch request
