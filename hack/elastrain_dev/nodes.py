"""Fake GPU nodes: create them, fail them (NotReady, then eviction), restore and delete them.

A node is "failed" by taking it out of KWOK's management: its lease stops being renewed, the
node lifecycle controller marks it NotReady (Unknown) and taints it, and the taint eviction
controller deletes its pods after the toleration time. Restoring puts it back under KWOK,
which marks it Ready again and finalises the deletions.
"""

from __future__ import annotations

import json
from typing import Any

from elastrain_dev.cluster import KWOK_MANAGED_LABEL, KWOK_MANAGED_VALUE, LocalCluster

GPU_RESOURCE = "nvidia.com/gpu"
NODE_PREFIX = "gpu-node-"


def build_node(
    name: str, *, gpus: int, cpu: str = "32", memory: str = "256Gi", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """The manifest of one fake node with ``gpus`` GPUs and extra ``labels``."""
    resources = {"cpu": cpu, "memory": memory, "pods": "110", GPU_RESOURCE: str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                KWOK_MANAGED_LABEL: KWOK_MANAGED_VALUE,
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                "nvidia.com/gpu.present": "true" if gpus else "false",
                **(labels or {}),
            },
        },
        "spec": {},
        "status": {
            "allocatable": resources,
            "capacity": resources,
        },
    }


def node_names(cluster: LocalCluster) -> list[str]:
    out = cluster.kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}").stdout
    return sorted(out.split())


def add_nodes(
    cluster: LocalCluster,
    *,
    count: int,
    gpus: int = 8,
    cpu: str = "32",
    prefix: str = NODE_PREFIX,
    labels: dict[str, str] | None = None,
) -> list[str]:
    """Create ``count`` more fake nodes named ``prefix``N (the first free numbers); return their names."""
    existing = set(node_names(cluster))
    names: list[str] = []
    index = 0
    while len(names) < count:
        name = f"{prefix}{index}"
        if name not in existing:
            names.append(name)
        index += 1
    items = [build_node(name, gpus=gpus, cpu=cpu, labels=labels) for name in names]
    cluster.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return names


def bring_up(cluster: LocalCluster, *, nodes: int = 4, gpus: int = 8) -> None:
    """Start ``cluster`` if needed and top it up to ``nodes`` fake GPU nodes, all Ready."""
    cluster.up()
    missing = nodes - len(node_names(cluster))
    if missing > 0:
        add_nodes(cluster, count=missing, gpus=gpus)
    wait_nodes_ready(cluster)


def wait_nodes_ready(cluster: LocalCluster, timeout_seconds: int = 90) -> None:
    cluster.kubectl(
        "wait", "--for=condition=Ready", "node", "--all", f"--timeout={timeout_seconds}s", timeout=timeout_seconds + 30
    )


def fail_node(cluster: LocalCluster, name: str) -> None:
    """Stop the node's heartbeat: NotReady after the grace period, pods evicted after the toleration."""
    cluster.kubectl("label", "node", name, f"{KWOK_MANAGED_LABEL}-")


def restore_node(cluster: LocalCluster, name: str) -> None:
    """Put a failed node back under KWOK, which marks it Ready again."""
    cluster.kubectl("label", "--overwrite", "node", name, f"{KWOK_MANAGED_LABEL}={KWOK_MANAGED_VALUE}")


def delete_node(cluster: LocalCluster, name: str) -> None:
    """Delete the node object; the pod garbage collector removes its pods."""
    cluster.kubectl("delete", "node", name, "--wait=false")


def describe_nodes(cluster: LocalCluster) -> str:
    """A table of nodes with readiness and GPU capacity, as `make demo` prints it."""
    columns = (
        "NAME:.metadata.name,"
        "READY:.status.conditions[?(@.type=='Ready')].status,"
        r"GPUS:.status.capacity.nvidia\.com/gpu,"
        "CPU:.status.capacity.cpu,"
        "MEMORY:.status.capacity.memory"
    )
    return cluster.kubectl("get", "nodes", "-o", f"custom-columns={columns}").stdout
