"""Re-lists on the real API server: what an informer does after 410 Gone, forced.

The hazard is the classic one: objects deleted while no watch ran are never reported by a watch,
only by a fresh list. Here the deletion happens while the informer has no watch, and its re-list
must drop the pod (and wake its job). Then, under the real operator, every informer is forced to
re-list, three times over, while a job loses a pod: the operator replaces the pod and never holds
two live pods for one role and index.

The re-list is forced (``Informer.relist``, the state a 410 leaves the informer in) rather than
provoked: this API server's watch cache serves a watch from an old resourceVersion without 410
(tried: resourceVersion 1 and others after an etcd compaction), so expiry cannot be caused from
outside in a test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import client, config

from elastrain_dev.cluster import LocalCluster
from elastrain_dev.jobdriver import JobDriver
from elastrain_dev.wait import until
from elastrain_operator.kube.cache import ClusterCache
from elastrain_operator.kube.client import KubeApi
from elastrain_operator.kube.informer import RELISTS, Informer, sources


def _api(cluster: LocalCluster) -> KubeApi:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
    return KubeApi(client.ApiClient(configuration))


def _pod(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"elastrain.dev/job": "j", "elastrain.dev/role": "worker", "elastrain.dev/index": name[-1]},
        },
        "spec": {"containers": [{"name": "c", "image": "none"}], "nodeSelector": {"nowhere": "true"}},
    }


def _relists(kind: str) -> float:
    return sum(float(RELISTS.labels(kind=kind, why=why)._value.get()) for why in ("start", "expired", "error"))


def test_a_relist_drops_what_was_deleted_while_no_watch_ran(cluster: LocalCluster, namespace: str) -> None:
    api = _api(cluster)
    for name in ("p-0", "p-1"):
        api.create(_pod(namespace, name))
    cache = ClusterCache()
    woken: list[set[tuple[str, str]]] = []
    cache.add_listener(lambda jobs, urgent: woken.append(jobs))
    source = next(s for s in sources(api, namespace) if s.kind == "Pod")
    informer = Informer(source, cache, watch_seconds=30)
    informer._list("start")
    assert sorted(p.name for p in cache.observe(namespace, "j").pods) == ["p-0", "p-1"]
    api.delete_pod(namespace, "p-1")  # no watch runs: no event will ever say so
    woken.clear()
    before = _relists("Pod")
    informer.resource_version = None  # where a 410 Gone leaves it
    informer.start()
    try:
        until(lambda: _relists("Pod") > before or None, what="a re-list", timeout=30)
        until(
            lambda: [p.name for p in cache.observe(namespace, "j").pods] == ["p-0"] or None,
            what="p-1 dropped from the cache",
            timeout=30,
        )
        assert (namespace, "j") in set().union(*woken)
        api.create(_pod(namespace, "p-2"))  # and the watch after the re-list delivers new events
        until(lambda: cache.holds("Pod", namespace, "p-2") or None, what="p-2 in the cache", timeout=30)
    finally:
        informer.stop()


@pytest.fixture
def informers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Informer]]:
    """Every Informer the in-process operator creates."""
    made: list[Informer] = []
    original = Informer.__init__

    def init(self: Informer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Informer, "__init__", init)
    yield made


def test_forced_relists_under_a_running_job_create_no_duplicate(
    cluster: LocalCluster, namespace: str, idle_job: JobDriver, informers: list[Informer], operator_env: dict[str, str]
) -> None:
    args = ["run", "--standalone", f"--namespace={namespace}", "-m", "elastrain_operator.handlers.jobs"]
    with KopfRunner(args, timeout=60) as runner:
        idle_job.create()
        idle_job.wait_phase("Running")
        victim = idle_job.running("worker", 1)
        for round_ in range(3):
            before = {kind: _relists(kind) for kind in ("Pod", "Node", "TrainingJob", "Service", "NetworkPolicy")}
            for informer in informers:
                informer.relist()
            if round_ == 0:  # most likely while no watch runs (1 s before they re-list)
                idle_job.kubectl("delete", "pod", victim["metadata"]["name"], "--wait=false")
            until(
                lambda: all(_relists(kind) > count for kind, count in before.items()) or None,  # noqa: B023
                what=f"every informer re-listed (round {round_ + 1})",
                timeout=60,
            )
        idle_job.running("worker", 1, not_uid=victim["metadata"]["uid"])  # replaced
        live = Counter(
            (p["metadata"]["labels"]["elastrain.dev/role"], int(p["metadata"]["labels"]["elastrain.dev/index"]))
            for p in idle_job.pods().values()
            if "deletionTimestamp" not in p["metadata"]
        )
        assert all(count == 1 for count in live.values()), live
        assert sorted(live) == [("head", 0), ("worker", 0), ("worker", 1)], live
        assert idle_job.status()["phase"] in ("Running", "Rescaling")
    assert runner.exception is None, runner.output[-3000:]
