"""Local mode: a Ray cluster on this machine with one Ray node per simulated worker pod.

Each worker node advertises the worker resource (one unit per rank) like a worker pod does in
the cluster; removing a node kills its processes like losing a Kubernetes node.
"""

from __future__ import annotations

import os
from typing import Any

import ray
from ray.cluster_utils import Cluster

from elastrain_trainer.driver.pods import WORKER_RESOURCE

#: CPUs the local head node offers (the driver's tasks; rank actors take none).
HEAD_CPUS = 1


class LocalCluster:
    """``pods`` worker nodes of ``ranks_per_pod`` ranks on a local multi-node Ray cluster."""

    def __init__(self, *, pods: int, ranks_per_pod: int) -> None:
        os.environ.setdefault("RUST_LOG", "warn")
        self.ranks_per_pod = ranks_per_pod
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": HEAD_CPUS, "include_dashboard": False},
        )
        self.nodes: list[Any] = []
        for _ in range(pods):
            self.add_pod(wait=False)
        ray.init(address=self.cluster.address, log_to_driver=False)
        self.cluster.wait_for_nodes()

    def add_pod(self, *, wait: bool = True) -> str:
        node = self.cluster.add_node(num_cpus=self.ranks_per_pod, resources={WORKER_RESOURCE: self.ranks_per_pod})
        self.nodes.append(node)
        if wait:
            self.cluster.wait_for_nodes()
        return str(node.node_id)

    def remove_pod(self, node_id: str) -> None:
        for node in self.nodes:
            if node.node_id == node_id:
                self.cluster.remove_node(node, allow_graceful=False)
                self.nodes.remove(node)
                return
        raise KeyError(f"no local pod with node id {node_id}")

    def pod_ids(self) -> list[str]:
        return [str(node.node_id) for node in self.nodes]

    def shutdown(self) -> None:
        ray.shutdown()
        self.cluster.shutdown()  # type: ignore[no-untyped-call]
