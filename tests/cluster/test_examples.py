"""Every file in examples/ applied for real, with the operator running: the pods are created (no
InvalidSpec, nothing refused at creation), and they run where the local cluster can run them.

Dry runs are not enough: the API server checks a pod only when it is created (a duplicate volume
name passed `--dry-run=server` on the TrainingJob and failed the job later). What an example expects
the cluster administrator to provide (a PriorityClass, PersistentVolumeClaims, Secrets) is created
first, named as the example names them; the GPU examples land on the session's fake GPU nodes.
Pods that need more (a PVC bound to real storage, the demo's own node pool and pod runner) stay
Pending, which is fine: creation is what can fail for the spec. `make demo` (tests/e2e/test_demo.py)
trains examples/demo.yaml end to end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from elastrain_dev.cluster import LocalCluster
from elastrain_dev.wait import until

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))
#: Examples whose pods KWOK marks Running on the session's nodes (no PVC, no node pool, no pod runner label).
RUN_HERE = {"cpu-tiny.yaml"}


def referenced(spec: dict[str, Any]) -> tuple[set[str], set[str], set[str]]:
    """PriorityClasses, PersistentVolumeClaims and Secrets the manifest names."""
    priority = {spec.get("scheduling", {}).get("priorityClassName")} - {None}
    claims = set(values_of(spec, "claimName"))
    secrets = {
        ref["name"]
        for env in spec.get("pod", {}).get("env", [])
        if (ref := env.get("valueFrom", {}).get("secretKeyRef"))
    }
    return priority, claims, secrets


def values_of(tree: Any, key: str) -> list[str]:
    """Every string value of ``key`` anywhere in ``tree`` (the checkpoint's and the volumes' claimName)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == key and isinstance(v, str):
                    found.append(v)
                walk(v)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(tree)
    return found


def provide(cluster: LocalCluster, namespace: str, spec: dict[str, Any]) -> None:
    """Create what the example expects the cluster administrator to have created."""
    priority, claims, secrets = referenced(spec)
    objects: list[dict[str, Any]] = [
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": n}, "value": 1000}
        for n in priority
    ]
    objects += [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": n, "namespace": namespace},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
        }
        for n in claims
    ]
    objects += [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": n, "namespace": namespace},
            "stringData": {"token": "x"},
        }
        for n in secrets
    ]
    for obj in objects:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))


@pytest.mark.usefixtures("operator")
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_applied_and_its_pods_are_created(cluster: LocalCluster, namespace: str, path: Path) -> None:
    manifest = yaml.safe_load(path.read_text())
    name, spec = manifest["metadata"]["name"], manifest["spec"]
    provide(cluster, namespace, spec)
    cluster.kubectl("apply", "-n", namespace, "-f", str(path))

    def state() -> tuple[str, set[str]]:
        job = json.loads(cluster.kubectl("get", "tj", name, "-n", namespace, "-o", "json").stdout)
        pods = json.loads(
            cluster.kubectl("get", "pods", "-n", namespace, "-l", f"elastrain.dev/job={name}", "-o", "json").stdout
        )
        return job.get("status", {}).get("phase", ""), {p["metadata"]["name"] for p in pods["items"]}

    wanted = {f"{name}-head", *(f"{name}-worker-{i}" for i in range(spec["replicas"]))}

    def settled() -> tuple[str, set[str]] | None:
        phase, pods = state()
        return (phase, pods) if phase == "Failed" or pods >= wanted else None

    phase, pods = until(settled, what=f"the pods of {path.name}", timeout=90)
    events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    refused = [f"{e['reason']}: {e['message']}" for e in events if e["reason"] in ("InvalidSpec", "FailedCreate")]
    assert phase != "Failed" and not refused, (phase, refused)
    assert pods == wanted
    if path.name in RUN_HERE:
        until(lambda: state()[0] == "Running", what=f"{path.name} Running", timeout=90)
