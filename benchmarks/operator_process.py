"""The real `elastrain-operator` process on a local control plane, as the operator benchmarks run it.

One place for what operator_recovery.py and operator_scale.py share: the CRD applied, a namespace
ready for jobs, the operator started out of cluster with its /metrics port, its API request counter
and memory read, and the process stopped however the benchmark ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from elastrain_dev.cluster import REPO_ROOT, LocalCluster
from elastrain_dev.processes import free_port
from elastrain_dev.wait import until


def api_requests(port: int) -> float:
    """The operator's Kubernetes API requests so far (``elastrain_api_requests_total``, all verbs)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        if family.name == "elastrain_api_requests"
        for s in family.samples
        if s.name == "elastrain_api_requests_total"
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def prepare_namespace(cluster: LocalCluster, namespace: str) -> None:
    """The TrainingJob CRD established and ``namespace`` created with its default ServiceAccount."""
    cluster.kubectl("apply", "--server-side", "-f", str(REPO_ROOT / "crds" / "trainingjobs.elastrain.dev.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/trainingjobs.elastrain.dev", "--timeout=60s")
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", namespace, "--timeout=60s")


@contextmanager
def running_operator(cluster: LocalCluster, settings: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The operator process (log in the cluster's log directory) and its /metrics port, up until the block ends.

    ``settings`` are ``ELASTRAIN_*`` variables on top of the kubeconfig and the ports.
    """
    port = free_port()
    exe = shutil.which("elastrain-operator", path=str(Path(sys.executable).parent)) or "elastrain-operator"
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "ELASTRAIN_METRICS_PORT": str(port),
        "ELASTRAIN_LIVENESS_PORT": "0",
        **settings,
    }
    with (cluster.log_dir / "operator.log").open("wb") as log:
        operator = subprocess.Popen([exe], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:

            def metrics_up() -> bool:
                try:
                    api_requests(port)
                except OSError:
                    return False
                return True

            until(metrics_up, what="the operator's /metrics", timeout=90)
            yield operator, port
        finally:
            operator.terminate()
            operator.wait(timeout=30)
