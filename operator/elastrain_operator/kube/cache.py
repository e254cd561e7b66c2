"""The operator's in-memory view of the cluster, fed by watches (``kube.informer``), read by every round.

One store per kind (TrainingJobs, their pods, Services and NetworkPolicies by the ``elastrain.dev/job``
label, and nodes), holding trimmed objects (``kube.trim``). A round asks :meth:`ClusterCache.job` and
:meth:`ClusterCache.observe` and never the API server. Each change calls the listener with the jobs
it concerns (a node's change concerns the jobs with pods on it), which wakes their rounds, and
checks off the writes a round is waiting to see (``reconcile.expectations``).
Thread-safe: informer threads write, round threads read.
"""

from __future__ import annotations

import copy
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from elastrain_operator.kube.convert import NodeProblem, node_problems, observe_pod, running_but_not_ready
from elastrain_operator.kube.trim import job_label, trim_job, trim_node, trim_owned, trim_pod
from elastrain_operator.reconcile.expectations import Expectations, JobKey
from elastrain_operator.reconcile.observed import Observed

Kind = Literal["TrainingJob", "Pod", "Service", "NetworkPolicy", "Node"]
KINDS: tuple[Kind, ...] = ("TrainingJob", "Pod", "Service", "NetworkPolicy", "Node")
_TRIM: dict[Kind, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "TrainingJob": trim_job,
    "Pod": trim_pod,
    "Service": trim_owned,
    "NetworkPolicy": trim_owned,
    "Node": trim_node,
}

#: Called with the jobs a change concerns and whether it is urgent (from an informer thread: hand over to
#: the event loop). Urgent: something was lost (a node's health changed, a pod failed, was deleted, or runs
#: without being Ready); the rest (pods starting, becoming Ready) may be batched for a moment.
Listener = Callable[[set[JobKey], bool], None]


def _urgent(kind: Kind, obj: Mapping[str, Any], *, deleted: bool) -> bool:
    if kind == "Node":
        return True
    if kind != "Pod":
        return False
    status = obj.get("status") or {}
    gone = deleted or (obj.get("metadata") or {}).get("deletionTimestamp") is not None
    return gone or status.get("phase") in ("Failed", "Succeeded", "Unknown") or running_but_not_ready(status)


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _revision(obj: Mapping[str, Any]) -> int | None:
    """The object's resourceVersion as a number (etcd's revision), None if it is not one."""
    raw = (obj.get("metadata") or {}).get("resourceVersion")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class CacheSizes:
    """How many objects of each kind the cache holds (the ``elastrain_cache_objects`` gauge)."""

    counts: Mapping[str, int]


class ClusterCache:
    """Trimmed objects by kind and (namespace, name), kept current by watch events."""

    def __init__(self, expectations: Expectations | None = None) -> None:
        self.expectations = expectations or Expectations()
        self._objects: dict[Kind, dict[tuple[str, str], dict[str, Any]]] = {kind: {} for kind in KINDS}
        # (kind, job) -> names of its objects; node -> its pods' (namespace, name): rounds never scan a kind.
        self._by_job: dict[tuple[Kind, JobKey], set[str]] = defaultdict(set)
        self._by_node: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._synced: set[tuple[Kind, str | None]] = set()
        self._sources: set[tuple[Kind, str | None]] = {(kind, None) for kind in KINDS}
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._synced_event = threading.Event()
        # uids of deleted objects: a late event of a second source (kopf's own watch) must not revive them.
        self._deleted: set[str] = set()

    # -- writes, from the informers -----------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def upsert(self, kind: Kind, obj: Mapping[str, Any]) -> None:
        """An ADDED or MODIFIED event, or an object a write returned: store it unless the cache holds a newer one."""
        trimmed = _TRIM[kind](obj)
        key = _key(trimmed)
        with self._lock:
            old = self._objects[kind].get(key)
            new_rev, old_rev = _revision(trimmed), _revision(old) if old is not None else None
            if old is not None and new_rev is not None and old_rev is not None and new_rev < old_rev:
                return  # a write's answer already put a newer version here
            if (trimmed.get("metadata") or {}).get("uid") in self._deleted:
                return
            jobs = self._jobs_of(kind, key, [trimmed] if old is None else [trimmed, old])
            if old is not None:
                self._unindex(kind, key, old)
            self._objects[kind][key] = trimmed
            self._index(kind, key, trimmed)
        self._checked_off(kind, trimmed, gone=(trimmed.get("metadata") or {}).get("deletionTimestamp") is not None)
        self._notify(jobs, urgent=_urgent(kind, trimmed, deleted=False))

    def delete(self, kind: Kind, obj: Mapping[str, Any]) -> None:
        """A DELETED event."""
        key = _key(obj)
        with self._lock:
            old = self._objects[kind].pop(key, None)
            uid = (obj.get("metadata") or {}).get("uid")
            if uid and kind == "TrainingJob":  # the one kind with two sources (kopf's watch and ours)
                self._deleted.add(str(uid))
            if old is not None:
                self._unindex(kind, key, old)
            jobs = self._jobs_of(kind, key, [obj] if old is None else [old])
        self._checked_off(kind, obj, gone=True)
        self._notify(jobs, urgent=_urgent(kind, obj, deleted=True))

    def expect_sources(self, sources: Iterable[tuple[Kind, str | None]]) -> None:
        """The (kind, namespace or None for all) lists that make the cache whole: it is synced once each came."""
        with self._lock:
            self._sources = set(sources)

    def replace(self, kind: Kind, items: Iterable[Mapping[str, Any]], namespace: str | None = None) -> None:
        """A (re-)list of ``kind`` in ``namespace`` (None: all): that part of the store becomes exactly ``items``.

        Objects missing from the list were deleted while no watch was running: they are dropped, and
        their jobs woken, as if their DELETED events had come.
        """
        fresh = {}
        for item in items:
            trimmed = _TRIM[kind](item)
            fresh[_key(trimmed)] = trimmed
        with self._lock:
            everything = self._objects[kind]
            old = {k: v for k, v in everything.items() if namespace is None or k[0] == namespace}
            changed = [fresh[k] for k in fresh if old.get(k) != fresh[k]]
            removed = [old[k] for k in old if k not in fresh]
            jobs: set[JobKey] = set()
            for obj in [*changed, *removed]:
                jobs |= self._jobs_of(kind, _key(obj), [obj])
            for k, obj in old.items():
                self._unindex(kind, k, obj)
                del everything[k]
            everything.update(fresh)
            for k, obj in fresh.items():
                self._index(kind, k, obj)
            self._synced.add((kind, namespace))
            if self._synced >= self._sources:
                self._synced_event.set()
        for obj in changed:
            self._checked_off(kind, obj, gone=(obj.get("metadata") or {}).get("deletionTimestamp") is not None)
        for obj in removed:
            self._checked_off(kind, obj, gone=True)
        self._notify(jobs, urgent=True)

    def _index(self, kind: Kind, key: tuple[str, str], obj: Mapping[str, Any]) -> None:
        label = job_label(obj)
        if label is not None and kind in ("Pod", "Service", "NetworkPolicy"):
            self._by_job[(kind, (key[0], label))].add(key[1])
        node = (obj.get("spec") or {}).get("nodeName") if kind == "Pod" else None
        if node:
            self._by_node[node].add(key)

    def _unindex(self, kind: Kind, key: tuple[str, str], obj: Mapping[str, Any]) -> None:
        label = job_label(obj)
        if label is not None and kind in ("Pod", "Service", "NetworkPolicy"):
            names = self._by_job.get((kind, (key[0], label)))
            if names is not None:
                names.discard(key[1])
                if not names:
                    del self._by_job[(kind, (key[0], label))]
        node = (obj.get("spec") or {}).get("nodeName") if kind == "Pod" else None
        if node and node in self._by_node:
            self._by_node[node].discard(key)
            if not self._by_node[node]:
                del self._by_node[node]

    def _jobs_of(self, kind: Kind, key: tuple[str, str], versions: list[Mapping[str, Any]]) -> set[JobKey]:
        """The jobs a change of this object concerns (called with the lock held)."""
        if kind == "TrainingJob":
            return {key}
        if kind == "Node":
            pods = self._objects["Pod"]
            return {
                (pod_key[0], label)
                for pod_key in self._by_node.get(key[1], ())
                if pod_key in pods and (label := job_label(pods[pod_key]))
            }
        return {(key[0], label) for obj in versions if (label := job_label(obj))}

    def _checked_off(self, kind: Kind, obj: Mapping[str, Any], *, gone: bool) -> None:
        label = job_label(obj)
        if label is None or kind in ("TrainingJob", "Node"):
            return
        namespace, name = _key(obj)
        if gone:
            self.expectations.observed_gone((namespace, label), (kind, name))
        else:
            self.expectations.observed_present((namespace, label), (kind, name))

    def _notify(self, jobs: set[JobKey], *, urgent: bool) -> None:
        if jobs:
            for listener in self._listeners:
                listener(jobs, urgent)

    # -- reads, from the rounds ---------------------------------------------------------------------

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Block until every kind has been listed once (a round before that would see a partial cluster)."""
        return self._synced_event.wait(timeout)

    @property
    def synced(self) -> bool:
        return self._synced_event.is_set()

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The TrainingJob as last seen (a copy the caller may keep), or None if it is not (or no longer) there."""
        with self._lock:
            found = self._objects["TrainingJob"].get((namespace, name))
            return _copy(found) if found is not None else None

    def holds(self, kind: Kind, namespace: str, name: str) -> bool:
        """Whether the cache holds this object (terminating or not)."""
        with self._lock:
            return (namespace, name) in self._objects[kind]

    def terminating_or_gone(self, namespace: str, name: str) -> bool:
        """Whether the pod is absent from the cache or marked for deletion."""
        with self._lock:
            pod = self._objects["Pod"].get((namespace, name))
        return pod is None or (pod.get("metadata") or {}).get("deletionTimestamp") is not None

    def observe(self, namespace: str, job: str) -> Observed:
        """The job's pods, with their nodes' health, and whether its Service and NetworkPolicy exist."""
        with self._lock:
            store = self._objects["Pod"]
            pods = [store[(namespace, n)] for n in self._by_job.get(("Pod", (namespace, job)), ())]
            services = bool(self._by_job.get(("Service", (namespace, job))))
            policies = bool(self._by_job.get(("NetworkPolicy", (namespace, job))))
            nodes = self._node_problems({(p.get("spec") or {}).get("nodeName") for p in pods} - {None})
        observed = tuple(o for o in (observe_pod(p, nodes) for p in pods) if o is not None)
        return Observed(pods=observed, service_exists=services, network_policy_exists=policies)

    def _node_problems(self, names: set[Any]) -> dict[str, NodeProblem | None]:
        """Health of the named nodes that exist (called with the lock held); a missing one is deleted."""
        present = [self._objects["Node"][("", n)] for n in names if ("", n) in self._objects["Node"]]
        return node_problems({"items": present})

    def sizes(self) -> CacheSizes:
        with self._lock:
            return CacheSizes({kind: len(store) for kind, store in self._objects.items()})


def _copy(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy (a round may keep or change what it got; the cache's copy stays as the watch left it)."""
    return copy.deepcopy(dict(obj))


__all__ = ["KINDS", "CacheSizes", "ClusterCache", "Kind", "Listener"]
