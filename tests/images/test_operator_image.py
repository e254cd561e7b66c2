"""The operator image reconciles a TrainingJob on the local control plane, as the chart runs it:
uid 10001, a read-only root file system, all capabilities dropped; the cluster's kubeconfig mounted,
host networking (the API server listens on loopback)."""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.images.containers import Images, podman

from elastrain_dev.cluster import LocalCluster
from elastrain_dev.jobdriver import JobDriver
from elastrain_dev.processes import free_port
from elastrain_dev.wait import until

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = REPO_ROOT / "crds" / "trainingjobs.elastrain.dev.yaml"
OPERATOR_UID = yaml.safe_load((REPO_ROOT / "helm/elastrain/values.yaml").read_text(encoding="utf-8"))[
    "podSecurityContext"
]["runAsUser"]

JOB: dict[str, Any] = {
    "apiVersion": "elastrain.dev/v1alpha1",
    "kind": "TrainingJob",
    "metadata": {"name": "job"},
    "spec": {
        "image": "elastrain/trainer:0.1.0",
        "replicas": 2,
        "acceleratorsPerWorker": 2,
        "trainer": {"steps": 50, "globalBatchSize": 32, "data": {"numShards": 8}},
        "runPolicy": {"backoffLimit": 1},
    },
}


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return int(resp.status), resp.read().decode()
    except OSError:
        return 0, ""


@pytest.fixture
def operator_container(
    images: Images, cluster: LocalCluster, namespace: str, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """The operator image running against this test's namespace; yields its name and ports, removed afterwards."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    cluster.kubectl("wait", "--for", "condition=established", "--timeout=60s", "crd/trainingjobs.elastrain.dev")
    # The kubeconfig with its certificates inlined, readable by the image's user (the cluster's keys are root's).
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(cluster.kubectl("config", "view", "--raw", "--flatten").stdout, encoding="utf-8")
    os.chmod(kubeconfig, 0o644)
    name = f"elastrain-operator-{uuid.uuid4().hex[:8]}"
    ports = {"metrics": free_port(), "liveness": free_port()}
    podman(
        "run", "--detach", "--name", name, "--network", "host",
        "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "-v", f"{kubeconfig}:/etc/elastrain/kubeconfig:ro",
        "-e", "KUBECONFIG=/etc/elastrain/kubeconfig",
        "-e", f"ELASTRAIN_NAMESPACES={namespace}",
        "-e", f"ELASTRAIN_METRICS_PORT={ports['metrics']}",
        "-e", f"ELASTRAIN_LIVENESS_PORT={ports['liveness']}",
        "-e", "ELASTRAIN_LEADER_ELECTION=false",
        "-e", "ELASTRAIN_RESYNC_SECONDS=1",
        images.operator,
    )  # fmt: skip
    try:
        yield {"name": name, **ports}
    finally:
        logs = podman("logs", name, check=False)
        podman("rm", "--force", "--time", "10", name, check=False)
        print(logs.stdout[-4000:], logs.stderr[-4000:])


def test_the_operator_image_reconciles_a_job(
    operator_container: dict[str, Any], cluster: LocalCluster, namespace: str
) -> None:
    name = operator_container["name"]
    inspect = json.loads(podman("container", "inspect", name).stdout)[0]
    assert inspect["Config"]["User"] == f"{OPERATOR_UID}:{OPERATOR_UID}"
    assert inspect["HostConfig"]["ReadonlyRootfs"] is True
    assert podman("exec", name, "id", "-u").stdout.strip() == str(OPERATOR_UID)
    assert podman("exec", name, "touch", "/opt/elastrain/x", check=False).returncode != 0

    healthz = f"http://127.0.0.1:{operator_container['liveness']}/healthz"
    assert until(lambda: http_get(healthz)[0] == 200, what="the operator's /healthz", timeout=120)

    job = JobDriver(cluster, namespace, base=JOB)
    job.create()
    # Pods created: the head and one per worker, labelled for the job.
    pods = until(lambda: job.pods() if len(job.pods()) >= 3 else None, what="the job's pods", timeout=120)
    roles = sorted(p["metadata"]["labels"]["elastrain.dev/role"] for p in pods.values())
    assert roles == ["head", "worker", "worker"], roles
    # Status written by the operator in the container.
    status = until(lambda: job.status() if job.status().get("workers") else None, what="the job's status", timeout=120)
    assert status["phase"] in {"Pending", "Running"}, status
    assert status["workers"]["desired"] == 2, status

    metrics_url = f"http://127.0.0.1:{operator_container['metrics']}/metrics"
    text = until(lambda: http_get(metrics_url)[1], what="the operator's /metrics", timeout=60)
    created = {
        line.split('"')[1]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("elastrain_pods_created_total{")
    }
    assert created.get("head", 0) >= 1 and created.get("worker", 0) >= 2, text[-2000:]
