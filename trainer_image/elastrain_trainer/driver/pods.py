"""Which worker pods exist: alive Ray nodes that carry the worker resource, one replica group each."""

from __future__ import annotations

from typing import Any

import ray

#: Custom Ray resource a worker pod's node advertises (one unit per rank it can run).
WORKER_RESOURCE = "elastrain_worker"


class RayNodePods:
    """Lists the alive Ray nodes with :data:`WORKER_RESOURCE` (worker pods; the head has none)."""

    def alive(self) -> dict[str, dict[str, Any]]:
        """Node id -> node info, for every alive worker node."""
        return {
            node["NodeID"]: node
            for node in ray.nodes()  # type: ignore[no-untyped-call]
            if node.get("Alive") and node.get("Resources", {}).get(WORKER_RESOURCE, 0) > 0
        }

    @staticmethod
    def ranks(node: dict[str, Any]) -> int:
        return int(node["Resources"][WORKER_RESOURCE])

    @staticmethod
    def address(node: dict[str, Any]) -> str:
        return str(node["NodeManagerAddress"])

    def pod_address(self, node: dict[str, Any]) -> str:
        """The pod's IP, by which the operator names a pod about to leave (``driver.leave``)."""
        return self.address(node)

    def ray_node_id(self, pod_id: str) -> str:
        """The Ray node a pod's group runs on: the pod's own node."""
        return pod_id
