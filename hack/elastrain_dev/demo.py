"""``make demo`` at this stage: the local cluster, the real operator, a TrainingJob through a node loss.

What it shows, with `kubectl` as a user would see it:
1. the fake GPU nodes;
2. the operator (the real `elastrain-operator` process) turning examples/demo-elastic.yaml into a head
   pod and worker pods on the fake nodes, `kubectl get tj` filling in;
3. a node failing under a worker: the job shrinks, keeps running, and a replacement waits for capacity;
4. a node added: the job grows back;
5. `kubectl describe tj`: the job's story in conditions, resizes and Events.

KWOK marks the pods Running without running containers, so no training happens yet: the trainer
joins the demo with the end-to-end issue (the local pod runner, elastrain_dev.podrunner, is the
piece that will run the trainer's processes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from elastrain_dev import nodes
from elastrain_dev.cluster import REPO_ROOT, LocalCluster
from elastrain_dev.processes import free_port
from elastrain_dev.wait import until

DEMO_JOB = REPO_ROOT / "examples" / "demo-elastic.yaml"
NAMESPACE = "demo"


def _say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def _get_tj(cluster: LocalCluster) -> str:
    return cluster.kubectl("get", "tj", "-n", NAMESPACE, "-o", "wide").stdout


def _status(cluster: LocalCluster) -> dict[str, Any]:
    out = cluster.kubectl("get", "tj", "demo", "-n", NAMESPACE, "-o", "json").stdout
    status: dict[str, Any] = json.loads(out).get("status") or {}
    return status


def _watch(cluster: LocalCluster, what: str, done: Any, timeout: float = 120) -> None:
    """Print `kubectl get tj` rows as they change (like `kubectl get tj -w`), until ``done(status)``."""
    header, last = True, ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = _get_tj(cluster).rstrip().splitlines()
        row = lines[-1].rsplit(None, 1)[0]  # without AGE, which changes every second
        if row != last:
            print("\n".join(lines) if header else lines[-1], flush=True)
            header, last = False, row
        if done(_status(cluster)):
            final = _get_tj(cluster).rstrip().splitlines()[-1]
            if final.rsplit(None, 1)[0] != last:
                print(final, flush=True)
            return
        time.sleep(0.3)
    raise TimeoutError(f"demo: timed out waiting for {what}; the operator log is in {cluster.log_dir}")


def run(cluster: LocalCluster) -> None:
    _say("the local control plane and its fake GPU nodes")
    nodes.bring_up(cluster, nodes=4, gpus=8)
    print(nodes.describe_nodes(cluster), end="")
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(REPO_ROOT / "crds" / "trainingjobs.elastrain.dev.yaml")
    )
    cluster.kubectl("wait", "--for=condition=Established", "crd/trainingjobs.elastrain.dev", "--timeout=60s")
    cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=120s")
    cluster.kubectl("create", "namespace", NAMESPACE)
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", NAMESPACE, "--timeout=60s")

    _say("the operator (elastrain-operator), watching all namespaces")
    exe = shutil.which("elastrain-operator", path=str(Path(sys.executable).parent)) or "elastrain-operator"
    log_path = cluster.log_dir / "operator.log"
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "ELASTRAIN_METRICS_PORT": str(free_port()),
        "ELASTRAIN_LIVENESS_PORT": "0",
        "ELASTRAIN_LEASE_NAMESPACE": NAMESPACE,
        "ELASTRAIN_RESYNC_SECONDS": "1",
    }
    with log_path.open("ab") as log:
        operator = subprocess.Popen([exe], env=env, stdout=log, stderr=subprocess.STDOUT)
    print(f"pid {operator.pid}, log {log_path}")
    pool = nodes.add_nodes(cluster, count=3, gpus=8, prefix="demo-node-", labels={"elastrain.dev/demo-pool": "true"})
    nodes.wait_nodes_ready(cluster)
    try:
        _say(f"kubectl apply -f {DEMO_JOB.relative_to(REPO_ROOT)}")
        print(cluster.kubectl("apply", "-n", NAMESPACE, "-f", str(DEMO_JOB)).stdout, end="")
        _watch(cluster, "3 workers ready", lambda s: s.get("phase") == "Running" and s["workers"]["ready"] == 3)
        print(cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide").stdout, end="")

        victim = json.loads(cluster.kubectl("get", "pod", "demo-worker-1", "-n", NAMESPACE, "-o", "json").stdout)
        node = victim["spec"]["nodeName"]
        _say(f"node {node} fails (its heartbeat stops) under worker demo-worker-1")
        nodes.fail_node(cluster, node)
        _watch(cluster, "the job to shrink and go on", lambda s: s.get("workers", {}).get("ready") == 2)
        blocked = until(
            lambda: next(
                (
                    c
                    for c in _status(cluster).get("conditions", [])
                    if c["type"] == "ScaleUpBlocked" and c["status"] == "True"
                ),
                None,
            ),
            what="ScaleUpBlocked",
            timeout=60,
        )
        print(f"ScaleUpBlocked: {blocked['message']}")

        _say("capacity returns: a new fake GPU node")
        added = nodes.add_nodes(
            cluster, count=1, gpus=8, prefix="demo-node-", labels={"elastrain.dev/demo-pool": "true"}
        )
        pool += added
        _watch(
            cluster,
            "the job to grow back",
            lambda s: s.get("phase") == "Running" and s["workers"]["ready"] == 3 and len(s.get("resizes", [])) >= 2,
        )

        _say("kubectl describe tj demo")
        print(cluster.kubectl("describe", "tj", "demo", "-n", NAMESPACE).stdout, end="")
        nodes.restore_node(cluster, node)
    finally:
        operator.terminate()
        operator.wait(timeout=30)
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        for name in pool:
            cluster.kubectl("delete", "node", name, "--wait=false", check=False)
    _say("done: the cluster stays up (make cluster-down stops it)")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
