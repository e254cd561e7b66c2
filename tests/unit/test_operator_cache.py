"""The watch-fed cache, its trimming and the expectations that keep rounds from acting on a stale cache."""

from __future__ import annotations

from typing import Any

import pytest

from elastrain_operator.kube.cache import ClusterCache
from elastrain_operator.kube.convert import node_problems, observe_pod
from elastrain_operator.kube.trim import trim_node, trim_pod
from elastrain_operator.reconcile.expectations import Expectations

pytestmark = pytest.mark.unit

NS = "team"


def pod(
    name: str, *, job: str = "a", index: int = 0, node: str | None = "n1", rv: int = 1, **extra: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": NS,
        "uid": f"uid-{name}",
        "resourceVersion": str(rv),
        "labels": {"elastrain.dev/job": job, "elastrain.dev/role": "worker", "elastrain.dev/index": str(index)},
        "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
    }
    meta.update(extra.pop("meta", {}))
    return {
        "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"name": "trainer", "image": "x", "env": [{"name": "A"}] * 50}]},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": None}],
            "containerStatuses": [{"name": "trainer", "state": {"running": {}}, "image": "x"}],
            **extra,
        },
    }


def node(name: str, ready: str = "True") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "resourceVersion": "1"},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": ready, "lastTransitionTime": "2026-01-01T00:00:00Z"},
            ],
            "images": [{"names": ["big"]}] * 20,
        },
    }


def job(name: str = "a", rv: int = 1, uid: str = "job-uid") -> dict[str, Any]:
    return {
        "apiVersion": "elastrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": NS, "uid": uid, "resourceVersion": str(rv), "managedFields": [{}]},
        "spec": {"replicas": 2},
    }


@pytest.mark.parametrize(
    "status",
    [
        {},
        {"reason": "Evicted", "phase": "Failed"},
        {
            "containerStatuses": [
                {"state": {"terminated": {"exitCode": 3, "reason": "Error", "message": "boom", "startedAt": "x"}}}
            ]
        },
        {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "no gpu"}]},
    ],
)
def test_a_trimmed_pod_is_observed_as_the_full_pod(status: dict[str, Any]) -> None:
    full = pod("a-worker-0", **status)
    nodes = node_problems({"items": [node("n1", "False")]})
    assert observe_pod(trim_pod(full), nodes) == observe_pod(full, nodes)
    assert len(repr(trim_pod(full))) < len(repr(full)) / 2


def test_a_trimmed_node_keeps_its_health() -> None:
    for ready in ("True", "False", "Unknown"):
        assert node_problems({"items": [trim_node(node("n1", ready))]}) == node_problems({"items": [node("n1", ready)]})


def test_observe_reads_a_jobs_pods_and_their_nodes_health() -> None:
    cache = ClusterCache()
    cache.replace("Node", [node("n1"), node("n2", "False")])
    cache.replace(
        "Pod", [pod("a-worker-0", node="n1"), pod("a-worker-1", index=1, node="n2"), pod("b-worker-0", job="b")]
    )
    observed = cache.observe(NS, "a")
    assert sorted((p.name, p.node_lost) for p in observed.pods) == [
        ("a-worker-0", None),
        ("a-worker-1", "node n2 NotReady (False)"),
    ]
    cache.delete("Node", node("n1"))
    assert {p.name: p.node_lost for p in cache.observe(NS, "a").pods}["a-worker-0"] == "node n1 deleted"


def test_every_change_wakes_the_jobs_it_concerns() -> None:
    cache = ClusterCache()
    woken: list[set[tuple[str, str]]] = []
    cache.add_listener(lambda jobs, urgent: woken.append(jobs))
    cache.replace("Pod", [pod("a-worker-0", node="n1"), pod("b-worker-0", job="b", node="n2")])
    assert woken == [{(NS, "a"), (NS, "b")}]
    woken.clear()
    cache.upsert("Node", node("n2", "Unknown"))  # a node going NotReady wakes the jobs with pods on it
    cache.upsert("Service", {"metadata": {"name": "a-head", "namespace": NS, "labels": {"elastrain.dev/job": "a"}}})
    cache.upsert("TrainingJob", job("c"))
    assert woken == [{(NS, "b")}, {(NS, "a")}, {(NS, "c")}]


def test_a_relist_drops_what_was_deleted_while_no_watch_ran() -> None:
    cache = ClusterCache()
    woken: list[set[tuple[str, str]]] = []
    cache.add_listener(lambda jobs, urgent: woken.append(jobs))
    cache.replace("Pod", [pod("a-worker-0"), pod("a-worker-1", index=1)])
    woken.clear()
    cache.replace("Pod", [pod("a-worker-0")])
    assert [p.name for p in cache.observe(NS, "a").pods] == ["a-worker-0"]
    assert woken == [{(NS, "a")}]


def test_a_relist_of_one_namespace_keeps_the_others() -> None:
    cache = ClusterCache()
    other = pod("a-worker-0")
    other["metadata"]["namespace"] = "other"
    cache.replace("Pod", [other], "other")
    cache.replace("Pod", [pod("a-worker-0")], NS)
    assert len(cache.observe("other", "a").pods) == len(cache.observe(NS, "a").pods) == 1


def test_an_older_version_never_replaces_a_newer_one_and_a_deleted_object_stays_deleted() -> None:
    cache = ClusterCache()
    cache.upsert("TrainingJob", {**job(rv=7), "status": {"phase": "Running"}})  # what a status write returned
    cache.upsert("TrainingJob", job(rv=5))  # the watch, still delivering an event from before the write
    assert (cache.job(NS, "a") or {})["status"] == {"phase": "Running"}
    cache.delete("TrainingJob", job(rv=8))
    cache.upsert("TrainingJob", job(rv=6))  # a second source's late event of the deleted job
    assert cache.job(NS, "a") is None
    cache.upsert("TrainingJob", job(rv=9, uid="new-uid"))  # a new job of the same name
    assert cache.job(NS, "a") is not None


def test_synced_only_once_every_source_listed() -> None:
    cache = ClusterCache()
    cache.expect_sources([("Pod", NS), ("Node", None)])
    cache.replace("Pod", [], NS)
    assert not cache.synced
    cache.replace("Node", [])
    assert cache.synced


def test_expectations_hold_a_job_until_the_cache_shows_its_writes() -> None:
    cache = ClusterCache()
    key = (NS, "a")
    cache.expectations.expect(
        key, creations={("Pod", "a-worker-0"), ("Service", "a-head")}, deletions={("Pod", "a-old")}, now=0
    )
    cache.replace("Pod", [pod("a-old")])
    assert not cache.expectations.satisfied(key, now=1)
    cache.upsert("Pod", pod("a-worker-0"))
    cache.upsert("Service", {"metadata": {"name": "a-head", "namespace": NS, "labels": {"elastrain.dev/job": "a"}}})
    assert cache.expectations.pending(key) == (frozenset(), frozenset({("Pod", "a-old")}))
    cache.upsert("Pod", pod("a-old", rv=2, meta={"deletionTimestamp": "2026-01-01T00:00:00Z"}))
    assert cache.expectations.satisfied(key, now=2)


def test_an_expectation_the_watch_never_meets_expires() -> None:
    expectations = Expectations(ttl_seconds=30)
    expectations.expect((NS, "a"), creations={("Pod", "a-worker-0")}, now=100)
    assert not expectations.satisfied((NS, "a"), now=129)
    assert expectations.satisfied((NS, "a"), now=131)
    assert expectations.wait((NS, "b"), timeout=0)  # nothing awaited: met at once


def test_a_loss_wakes_its_jobs_urgently_a_pod_starting_does_not() -> None:
    cache = ClusterCache()
    calls: list[bool] = []
    cache.add_listener(lambda jobs, urgent: calls.append(urgent))
    cache.replace("Pod", [pod("a-worker-0", node="n1")])
    calls.clear()
    cache.upsert("Pod", pod("a-worker-1", index=1))  # a new pod, Running and Ready
    cache.upsert("Node", node("n1", "Unknown"))  # its node stopped reporting
    cache.upsert("Pod", pod("a-worker-0", rv=2, conditions=[{"type": "Ready", "status": "False"}]))
    cache.delete("Pod", pod("a-worker-1"))
    assert calls == [False, True, True, True]
