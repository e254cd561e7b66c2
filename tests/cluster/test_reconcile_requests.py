"""What the operator costs the API server, counted request by request on the real one.

Rounds read the watch-fed cache (``kube.cache``), so a round that changes nothing makes no request,
an idle running job none at all, and a job's whole life only its writes plus the cache's lists and
watches, each named here.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import client, config

from elastrain_dev import nodes
from elastrain_dev.audit import read_requests
from elastrain_dev.cluster import LocalCluster
from elastrain_dev.jobdriver import JobDriver
from elastrain_dev.wait import until
from elastrain_operator.handlers.reconciler import Writer, reconcile_job
from elastrain_operator.kube.cache import ClusterCache
from elastrain_operator.kube.client import CountingApiClient, KubeApi
from elastrain_operator.kube.informer import Informers


def _path(url: str) -> str:
    return url.split("?", 1)[0].split("/", 3)[-1]


class RecordingApiClient(CountingApiClient):
    """Records (method, path) of every request, without the query string."""

    def __init__(self, configuration: client.Configuration | None = None) -> None:
        super().__init__(configuration)
        self.calls: list[tuple[str, str]] = []

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((method.upper(), _path(url)))
        return super().call_api(method, url, *args, **kwargs)


def _configuration(cluster: LocalCluster) -> client.Configuration:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


@pytest.fixture
def cache(cluster: LocalCluster, namespace: str) -> Iterator[ClusterCache]:
    """A cache fed by informers on their own client, so the rounds' requests are counted apart."""
    cache = ClusterCache()
    informers = Informers(
        KubeApi(CountingApiClient(_configuration(cluster))), cache, namespaces=(namespace,), watch_seconds=300
    )
    informers.start()
    assert cache.wait_synced(60)
    yield cache
    informers.stop()


def test_a_round_reads_nothing_and_a_round_that_changes_nothing_sends_nothing(
    cluster: LocalCluster, namespace: str, idle_job: JobDriver, cache: ClusterCache
) -> None:
    recorder = RecordingApiClient(_configuration(cluster))
    writer = Writer(KubeApi(recorder), cache)
    idle_job.create()
    until(lambda: cache.job(namespace, idle_job.name), what="the job in the cache", timeout=30)

    def events(kind: str, reason: str, message: str) -> None:
        pass

    # The first round creates the Secret, the NetworkPolicy, the PodDisruptionBudget, the Service and the pods,
    # and writes the status.
    assert reconcile_job(writer, namespace, idle_job.name, events)
    posts = [path.rsplit("/", 1)[-1] for verb, path in recorder.calls if verb == "POST"]
    assert sorted(posts) == [
        "networkpolicies",
        "poddisruptionbudgets",
        "pods",
        "pods",
        "pods",
        "secrets",
        "services",
    ], recorder.calls
    assert [verb for verb, _ in recorder.calls if verb not in ("POST", "PATCH")] == [], recorder.calls

    deadline = time.monotonic() + 60
    while idle_job.status().get("phase") != "Running":  # KWOK runs the pods; rounds write the status
        assert time.monotonic() < deadline, idle_job.status()
        assert reconcile_job(writer, namespace, idle_job.name, events)
        time.sleep(0.3)
    time.sleep(1)
    assert reconcile_job(writer, namespace, idle_job.name, events)  # the status of Running settles

    recorder.calls.clear()
    for _ in range(5):
        assert reconcile_job(writer, namespace, idle_job.name, events)
    assert recorder.calls == []


@pytest.fixture
def operator_account(
    cluster: LocalCluster, namespace: str, operator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """The in-process operator authenticates as ServiceAccount ``operator`` of the test's namespace (bound to
    cluster-admin), so the API server's audit log holds every request it makes, its own client's and kopf's
    (kopf's watch of jobs, its Events) alike; the test's own kubectl calls (the admin's) are not logged."""
    cluster.kubectl("create", "serviceaccount", "operator", "-n", namespace)
    binding = f"{namespace}-operator"
    cluster.kubectl(
        "create", "clusterrolebinding", binding, "--clusterrole=cluster-admin", f"--serviceaccount={namespace}:operator"
    )
    monkeypatch.setenv("KUBECONFIG", str(cluster.service_account_kubeconfig(namespace, "operator", tmp_path / "kc")))
    try:
        yield f"system:serviceaccount:{namespace}:operator"
    finally:
        cluster.kubectl("delete", "clusterrolebinding", binding, check=False)


KINDS = ("trainingjobs", "pods", "services", "networkpolicies", "nodes")
"""What the operator lists and watches."""


def _named(cluster: LocalCluster, account: str, namespace: str) -> Counter[str]:
    """The account's requests so far by verb and resource ("create pods", "watch nodes"), from the audit
    log: cluster-wide ones and those in ``namespace`` (the ServiceAccount's token request is the test's)."""
    return Counter(
        f"{r.verb} {r.resource}"
        for r in read_requests(cluster.audit_log, user=account)
        if r.namespace in ("", namespace)
    )


def _operator(namespace: str) -> KopfRunner:
    args = ["run", "--standalone", f"--namespace={namespace}", "-m", "elastrain_operator.handlers.jobs"]
    return KopfRunner(args, timeout=60)


def test_an_idle_running_job_costs_no_request_and_a_job_life_few(
    cluster: LocalCluster, namespace: str, idle_job: JobDriver, operator_account: str
) -> None:
    """Counted by the API server (its audit log), not by the operator: kopf's requests count too."""
    with _operator(namespace) as runner:

        def started() -> bool:
            named = _named(cluster, operator_account, namespace)
            return all(named[f"watch {kind}"] for kind in KINDS) and named["watch trainingjobs"] == 2

        # Start-up, once per operator and not per job: the cache's list and watch of each kind, kopf's
        # of jobs, and kopf's discovery of the CRD and of the namespaces it serves.
        until(started, what="the operator's watches", timeout=60)
        time.sleep(2)
        start = _named(cluster, operator_account, namespace)
        assert set(start) <= {
            *(
                f"{verb} {kind}"
                for verb in ("list", "watch")
                for kind in (*KINDS, "customresourcedefinitions", "namespaces")
            )
        }, start
        idle_job.create()
        idle_job.wait_phase("Running")
        created = _named(cluster, operator_account, namespace) - start
        # A running job's status settles within a round or two of its last change.
        time.sleep(3)
        before = _named(cluster, operator_account, namespace)
        time.sleep(30)
        idle = _named(cluster, operator_account, namespace) - before
        assert idle == Counter(), idle  # no list, no get, no write; no watch renewed (ELASTRAIN_WATCH_SECONDS: 300)

        victim = idle_job.running("worker", 0)
        node = str(victim["spec"]["nodeName"])
        lost = sum(p["spec"].get("nodeName") == node for p in idle_job.pods().values())  # 2 GPUs each: maybe 2
        nodes.fail_node(cluster, node)
        try:
            until(
                lambda: idle_job.live_name("worker", 0) != victim["metadata"]["name"] or None,
                what="the lost worker's replacement",
                timeout=60,
            )
        finally:
            nodes.restore_node(cluster, node)
        idle_job.kubectl("scale", "tj", idle_job.name, "--replicas=3")
        until(lambda: len([k for k in idle_job.live() if k[0] == "worker"]) == 3 or None, what="3 workers", timeout=60)
        idle_job.kubectl("delete", "tj", idle_job.name)
        until(lambda: idle_job.get() is None or None, what="the job gone", timeout=60)
        time.sleep(2)
    life = _named(cluster, operator_account, namespace) - start
    print("start-up:", dict(start), "\ncreate:", dict(created), "\nlife:", dict(life))
    # A job's life is writes only: no list, no watch (none renewed), no get.
    # The Secret, the NetworkPolicy, the PodDisruptionBudget, the Service, head + 2 workers, the lost pods'
    # deletions and replacements, a 3rd worker.
    assert life["create secrets"] == life["create networkpolicies"] == life["create services"] == 1, life
    assert life["create poddisruptionbudgets"] == 1, life
    assert life["create pods"] == 3 + lost + 1, life
    assert life["delete pods"] == lost, life
    # Status writes only when the status changes: pods created, Running, the loss, the replacement, the scale, the end.
    assert life["patch trainingjobs/status"] <= 10, life
    # Events (kopf posts them for the operator): created, running, the loss, the replacement, the scale.
    assert life["create events"] <= 10, life
    assert set(life) <= {
        "create secrets",
        "create networkpolicies",
        "create poddisruptionbudgets",
        "create services",
        "create pods",
        "delete pods",
        "patch trainingjobs/status",
        "create events",
    }, life
    # KubeRay's 29 (its Events included; its informers started before the job, as these did) plus what
    # elastrain does that KubeRay does not: the Secret, the NetworkPolicy and the PodDisruptionBudget.
    assert sum(life.values()) <= 29 + 3, life
    assert runner.exception is None, runner.output[-3000:]
