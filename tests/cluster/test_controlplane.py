"""The local control plane behaves like a real cluster: versions, CRDs, GPU scheduling, node loss.

These are the facts every later tier stands on, each checked against the real API server,
scheduler, controller manager and KWOK.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from elastrain_dev import nodes
from elastrain_dev.cluster import REPO_ROOT, LocalCluster
from elastrain_dev.wait import until


def _get(cluster: LocalCluster, *args: str) -> dict[str, Any] | None:
    return cluster.get_json(*args)


def _pod(name: str, *, gpus: int, node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "busybox",
                "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
            }
        ],
        "terminationGracePeriodSeconds": 0,
    }
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _create(cluster: LocalCluster, namespace: str, manifest: dict[str, Any]) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(manifest))


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions", []):
        if cond.get("type") == kind:
            return dict(cond)
    return None


def test_reports_the_pinned_kubernetes_version(cluster: LocalCluster) -> None:
    gomod = (REPO_ROOT / "hack" / "tools" / "kubernetes" / "go.mod").read_text()
    match = re.search(r"^require k8s.io/kubernetes (v\S+)$", gomod, re.M)
    assert match, "hack/tools/kubernetes/go.mod has no k8s.io/kubernetes require line"
    versions = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert versions["serverVersion"]["gitVersion"] == match.group(1)
    assert versions["clientVersion"]["gitVersion"] == match.group(1)


def test_rbac_is_enforced(cluster: LocalCluster, namespace: str) -> None:
    # An unprivileged service account may not list pods: RBAC is on, not AlwaysAllow.
    proc = cluster.kubectl(
        "auth",
        "can-i",
        "list",
        "pods",
        "-n",
        namespace,
        f"--as=system:serviceaccount:{namespace}:default",
        check=False,
    )
    assert proc.stdout.strip() == "no", proc.stdout + proc.stderr


def test_crd_is_applied_and_served(cluster: LocalCluster, namespace: str, tmp_path: Path) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.test.elastrain.dev"},
        "spec": {
            "group": "test.elastrain.dev",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer", "minimum": 1}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(crd))
    try:
        cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.test.elastrain.dev", "--timeout=60s")
        widget = {
            "apiVersion": "test.elastrain.dev/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 3},
        }
        _create(cluster, namespace, widget)
        stored = _get(cluster, "widget", "w", "-n", namespace)
        assert stored is not None and stored["spec"] == {"size": 3}
        # The schema is enforced by the API server itself.
        bad = {**widget, "metadata": {"name": "bad"}, "spec": {"size": 0}}
        proc = cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False)
        assert proc.returncode != 0 and "spec.size" in proc.stderr, proc.stderr
    finally:
        cluster.kubectl("delete", "crd", "widgets.test.elastrain.dev", "--wait=false", check=False)


def test_gpu_pod_is_scheduled_on_a_fake_gpu_node_and_runs(cluster: LocalCluster, namespace: str) -> None:
    _create(cluster, namespace, _pod("gpu-1", gpus=1))
    pod = until(
        lambda: (p := _get(cluster, "pod", "gpu-1", "-n", namespace)) and p["status"].get("phase") == "Running" and p,
        what="pod gpu-1 Running",
    )
    node = _get(cluster, "node", pod["spec"]["nodeName"])
    assert node is not None
    assert int(node["status"]["capacity"]["nvidia.com/gpu"]) >= 1


def test_pod_wanting_more_gpus_than_any_node_stays_pending(cluster: LocalCluster, namespace: str) -> None:
    _create(cluster, namespace, _pod("too-big", gpus=64))

    def unschedulable() -> dict[str, Any] | None:
        pod = _get(cluster, "pod", "too-big", "-n", namespace)
        cond = pod and _condition(pod, "PodScheduled")
        return cond if cond and cond.get("reason") == "Unschedulable" else None

    cond = until(unschedulable, what="PodScheduled=False/Unschedulable on pod too-big")
    assert cond["status"] == "False"
    assert "nvidia.com/gpu" in cond["message"]
    pod = _get(cluster, "pod", "too-big", "-n", namespace)
    assert pod is not None and pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")


@pytest.fixture
def spare_node(cluster: LocalCluster) -> Any:
    """A node of its own for a failure test, so the shared nodes stay healthy."""
    (name,) = nodes.add_nodes(cluster, count=1, gpus=8)
    cluster.kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=60s")
    yield name
    cluster.kubectl("delete", "node", name, "--wait=false", check=False)


def test_node_made_not_ready_has_its_pods_evicted(cluster: LocalCluster, namespace: str, spare_node: str) -> None:
    _create(cluster, namespace, _pod("victim", gpus=1, node=spare_node))
    until(
        lambda: (p := _get(cluster, "pod", "victim", "-n", namespace)) and p["status"].get("phase") == "Running",
        what="pod victim Running",
    )

    nodes.fail_node(cluster, spare_node)

    def not_ready() -> dict[str, Any] | None:
        node = _get(cluster, "node", spare_node)
        cond = node and _condition(node, "Ready")
        return cond if cond and cond["status"] != "True" else None

    cond = until(not_ready, what=f"node {spare_node} NotReady", timeout=60)
    assert cond["status"] == "Unknown"  # the heartbeat stopped; nobody reported False
    taints = {t["key"] for t in (_get(cluster, "node", spare_node) or {})["spec"].get("taints", [])}
    assert "node.kubernetes.io/unreachable" in taints

    # The taint eviction controller deletes the pod once its 5 s toleration runs out.
    evicted = until(
        lambda: (
            (p := _get(cluster, "pod", "victim", "-n", namespace)) is None
            or ("deletionTimestamp" in p["metadata"] and p)
        ),
        what="pod victim evicted",
        timeout=60,
    )
    assert evicted is True or "deletionTimestamp" in evicted["metadata"]

    # Back under KWOK the node is Ready again and the eviction is finalised.
    nodes.restore_node(cluster, spare_node)
    cluster.kubectl("wait", "--for=condition=Ready", f"node/{spare_node}", "--timeout=60s")
    until(lambda: _get(cluster, "pod", "victim", "-n", namespace) is None, what="pod victim gone", timeout=60)


def test_deleted_nodes_pods_are_removed(cluster: LocalCluster, namespace: str, spare_node: str) -> None:
    _create(cluster, namespace, _pod("orphan", gpus=1, node=spare_node))
    until(
        lambda: (p := _get(cluster, "pod", "orphan", "-n", namespace)) and p["status"].get("phase") == "Running",
        what="pod orphan Running",
    )

    nodes.delete_node(cluster, spare_node)

    # The pod garbage collector removes pods bound to a node that no longer exists
    # (after its 40 s quarantine).
    until(
        lambda: _get(cluster, "pod", "orphan", "-n", namespace) is None,
        what="orphaned pod removed",
        timeout=150,
        interval=2,
    )
    assert _get(cluster, "node", spare_node) is None
