"""What one reconcile round costs the API server, counted request by request on the real one.

A round that changes nothing (most rounds of a running job, every resync) reads the job, its pods,
its Service and its NetworkPolicy once each, and writes nothing; the shared node list is read at
most once a second for all jobs and is left out here. A round that creates pods observes them again,
so the status it writes counts them.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client, config

from elastrain_dev.cluster import LocalCluster
from elastrain_dev.jobdriver import JobDriver
from elastrain_operator.handlers.reconciler import reconcile_job
from elastrain_operator.kube.client import CountingApiClient, KubeApi


class RecordingApiClient(CountingApiClient):
    """Records (method, path) of every request, without the query string."""

    def __init__(self, configuration: client.Configuration) -> None:
        super().__init__(configuration)
        self.calls: list[tuple[str, str]] = []

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((method.upper(), url.split("?", 1)[0].split("/", 3)[-1]))
        return super().call_api(method, url, *args, **kwargs)


def _without_nodes(calls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(method, path) for method, path in calls if path != "api/v1/nodes"]


def test_a_round_that_changes_nothing_reads_four_objects_and_writes_none(
    cluster: LocalCluster, namespace: str, idle_job: JobDriver
) -> None:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
    recorder = RecordingApiClient(configuration)
    api = KubeApi(recorder)
    idle_job.create()

    def events(kind: str, reason: str, message: str) -> None:
        pass

    # The first round creates the Service, the NetworkPolicy, the Secret and the pods, then sees them again.
    assert reconcile_job(api, namespace, idle_job.name, events)
    first = _without_nodes(recorder.calls)
    assert sum(method == "POST" for method, _ in first) == 6, first  # secret, policy, service, head, 2 workers
    assert [m for m, _ in first].count("GET") == 7, first  # the job, then pods/services/policies before and after

    deadline = time.monotonic() + 60
    while idle_job.status().get("phase") != "Running":  # KWOK runs the pods; rounds write the status
        assert time.monotonic() < deadline, idle_job.status()
        assert reconcile_job(api, namespace, idle_job.name, events)
        time.sleep(0.3)
    assert reconcile_job(api, namespace, idle_job.name, events)  # the status of Running settles

    recorder.calls.clear()
    assert reconcile_job(api, namespace, idle_job.name, events)
    base = f"namespaces/{namespace}"
    assert _without_nodes(recorder.calls) == [
        ("GET", f"apis/elastrain.dev/v1alpha1/{base}/trainingjobs/{idle_job.name}"),
        ("GET", f"api/v1/{base}/pods"),
        ("GET", f"api/v1/{base}/services"),
        ("GET", f"apis/networking.k8s.io/v1/{base}/networkpolicies"),
    ]
