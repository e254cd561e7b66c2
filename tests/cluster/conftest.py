"""Fixtures of the cluster tier that are about elastrain's own resources."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import client, config

from elastrain_dev.cluster import LocalCluster
from elastrain_dev.jobdriver import JobDriver
from elastrain_dev.podrunner import PodRunner
from elastrain_dev.processes import free_port
from elastrain_operator.handlers.reconciler import Writer
from elastrain_operator.kube.cache import ClusterCache
from elastrain_operator.kube.client import CountingApiClient, KubeApi
from elastrain_operator.kube.informer import Informers

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = REPO_ROOT / "crds" / "trainingjobs.elastrain.dev.yaml"


@pytest.fixture(scope="session")
def trainingjob_crd(cluster: LocalCluster) -> str:
    """Install the generated TrainingJob CRD (as `make crds` wrote it) and wait until it is served."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    cluster.kubectl("wait", "--for", "condition=established", "--timeout=60s", "crd/trainingjobs.elastrain.dev")
    return "trainingjobs.elastrain.dev"


@pytest.fixture
def runner(cluster: LocalCluster, tmp_path: Path) -> Iterator[PodRunner]:
    """The development pod runner, in a thread: labelled pods run as local processes (logs in tmp_path)."""
    runner = PodRunner(cluster.kubeconfig, tmp_path, extra_path=str(Path(sys.executable).parent), interval=0.2)
    thread = runner.start_in_thread()
    yield runner
    runner.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()


# -- the operator under KopfRunner, and a driver for one job -----------------------------------------


BASE_JOB: dict[str, Any] = {
    "apiVersion": "elastrain.dev/v1alpha1",
    "kind": "TrainingJob",
    "metadata": {"name": "job"},
    "spec": {
        "image": "elastrain-trainer:test",
        "replicas": 2,
        "acceleratorsPerWorker": 2,
        "trainer": {"steps": 50, "globalBatchSize": 32, "data": {"numShards": 8}},
        "runPolicy": {"backoffLimit": 1},
    },
}


@pytest.fixture(scope="session")
def operator_env(cluster: LocalCluster) -> dict[str, str]:
    """Environment of the in-process operator: this cluster, a free metrics port, a fast resync."""
    env = {
        "KUBECONFIG": str(cluster.kubeconfig),
        "ELASTRAIN_METRICS_PORT": str(free_port()),
        "ELASTRAIN_RESYNC_SECONDS": "1",
        "ELASTRAIN_LEADER_ELECTION": "false",
    }
    os.environ.update(env)
    return env


@pytest.fixture
def operator(
    cluster: LocalCluster, namespace: str, trainingjob_crd: str, operator_env: dict[str, str]
) -> Iterator[KopfRunner]:
    """The real operator (kopf, standalone) watching this test's namespace, stopped after the test."""
    args = ["run", "--standalone", f"--namespace={namespace}", "-m", "elastrain_operator.handlers.jobs"]
    with KopfRunner(args, timeout=60) as runner:
        yield runner
    assert runner.exception is None, runner.output[-3000:]


@pytest.fixture
def idle_job(cluster: LocalCluster, namespace: str, trainingjob_crd: str) -> JobDriver:
    """A driver for job "job" in this test's namespace; the test runs the operator itself."""
    return JobDriver(cluster, namespace, base=BASE_JOB)


@pytest.fixture
def job(idle_job: JobDriver, operator: KopfRunner) -> JobDriver:
    """A driver for job "job" in this test's namespace, with the operator running."""
    return idle_job


@pytest.fixture
def writer(cluster: LocalCluster, namespace: str, trainingjob_crd: str) -> Iterator[Writer]:
    """What the operator's rounds write with, on a watch-fed cache of this test's namespace (the test runs
    the rounds itself: ``reconcile_job(writer, ...)``)."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
    cache = ClusterCache()
    informers = Informers(KubeApi(CountingApiClient(configuration)), cache, namespaces=(namespace,), watch_seconds=300)
    informers.start()
    assert cache.wait_synced(60)
    yield Writer(KubeApi(CountingApiClient(configuration)), cache)
    informers.stop()
