"""``observe_pod``: raw pod dicts (as the API server returns them) -> ObservedPod, and the pods the builders make."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from elastrain_operator.api import Role
from elastrain_operator.builders.pods import build_head_pod, build_worker_pod
from elastrain_operator.kube.convert import NodeProblem, node_problems, observe_pod, running_but_not_ready
from elastrain_operator.reconcile.failures import Blame, blame
from elastrain_operator.reconcile.observed import ObservedPod

pytestmark = pytest.mark.unit

#: The conftest's ``make_job`` fixture (fixtures, not imports: tests/unit is not a package).
MakeJob = Callable[..., Any]

LABELS = {"elastrain.dev/job": "demo", "elastrain.dev/role": "worker", "elastrain.dev/index": "2"}


def raw_pod(
    status: dict[str, Any] | None = None, *, labels: dict[str, str] | None = None, **meta: Any
) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "demo-worker-2",
            "namespace": "ml",
            "labels": LABELS if labels is None else labels,
            **meta,
        },
        "spec": {"containers": [{"name": "trainer"}]},
    }
    if status is not None:
        pod["status"] = status
    return pod


def terminated(code: int, reason: str | None = "Error", message: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": code, "finishedAt": "2026-01-01T12:00:00Z"}
    if reason:
        state["reason"] = reason
    if message is not None:
        state["message"] = message
    return {"name": "trainer", "ready": False, "restartCount": 0, "state": {"terminated": state}}


@dataclass(frozen=True)
class ConvertCase:
    id: str
    pod: dict[str, Any]
    want: ObservedPod


def worker(**fields: Any) -> ObservedPod:
    return ObservedPod(name="demo-worker-2", role=Role.WORKER, index=2, **fields)


CASES = [
    ConvertCase("just-created-no-status", raw_pod(), worker(phase="Pending")),
    ConvertCase(
        "unschedulable",
        raw_pod(
            {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu.",
                    }
                ],
            }
        ),
        worker(phase="Pending", unschedulable="0/4 nodes are available: 4 Insufficient nvidia.com/gpu."),
    ),
    ConvertCase(
        "unschedulable-without-message",
        raw_pod(
            {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}
        ),
        worker(phase="Pending", unschedulable="no node fits"),
    ),
    ConvertCase(
        "scheduling-gated-is-not-unschedulable",
        raw_pod(
            {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
            }
        ),
        worker(phase="Pending"),
    ),
    ConvertCase(
        "running-and-ready-on-a-node",
        {
            **raw_pod(
                {
                    "phase": "Running",
                    "conditions": [
                        {"type": "PodScheduled", "status": "True"},
                        {"type": "Ready", "status": "True"},
                    ],
                    "containerStatuses": [{"name": "trainer", "ready": True, "state": {"running": {}}}],
                }
            ),
            "spec": {"nodeName": "gpu-node-3", "containers": [{"name": "trainer"}]},
        },
        worker(phase="Running", ready=True, node="gpu-node-3"),
    ),
    ConvertCase(
        "running-not-ready",
        raw_pod({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}),
        worker(phase="Running"),
    ),
    ConvertCase(
        "terminating",
        raw_pod({"phase": "Running"}, deletionTimestamp="2026-01-01T12:00:00Z"),
        worker(phase="Running", terminating=True),
    ),
    ConvertCase(
        "failed-with-exit-code",
        raw_pod({"phase": "Failed", "containerStatuses": [terminated(1)]}),
        worker(phase="Failed", exit_code=1, reason="Error"),
    ),
    ConvertCase(
        "failed-with-a-termination-message",
        raw_pod({"phase": "Failed", "containerStatuses": [terminated(1, message="trainer: ValueError: bad")]}),
        worker(phase="Failed", exit_code=1, reason="Error", message="trainer: ValueError: bad"),
    ),
    ConvertCase(
        "an-empty-termination-message-is-none",
        raw_pod({"phase": "Failed", "containerStatuses": [terminated(1, message="")]}),
        worker(phase="Failed", exit_code=1, reason="Error"),
    ),
    ConvertCase(
        "oom-killed",
        raw_pod({"phase": "Failed", "containerStatuses": [terminated(137, "OOMKilled")]}),
        worker(phase="Failed", exit_code=137, reason="OOMKilled"),
    ),
    ConvertCase(
        "evicted-pod-reason-wins-over-container-reason",
        raw_pod({"phase": "Failed", "reason": "Evicted", "containerStatuses": [terminated(1)]}),
        worker(phase="Failed", exit_code=1, reason="Evicted"),
    ),
    ConvertCase(
        "evicted-before-the-container-started",
        raw_pod({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}),
        worker(phase="Failed", reason="Evicted"),
    ),
    ConvertCase(
        "succeeded",
        raw_pod({"phase": "Succeeded", "containerStatuses": [terminated(0, "Completed")]}),
        worker(phase="Succeeded", exit_code=0, reason="Completed"),
    ),
    ConvertCase(
        "head",
        raw_pod(
            {"phase": "Running"},
            labels={**LABELS, "elastrain.dev/role": "head", "elastrain.dev/index": "0"},
            name="demo-head",
        ),
        ObservedPod(name="demo-head", role=Role.HEAD, index=0, phase="Running"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_observe_pod(case: ConvertCase) -> None:
    assert observe_pod(case.pod) == case.want


@pytest.mark.parametrize(
    "labels",
    [
        {},
        {"elastrain.dev/job": "demo"},
        {"elastrain.dev/job": "demo", "elastrain.dev/role": "worker"},
        {"elastrain.dev/job": "demo", "elastrain.dev/role": "driver", "elastrain.dev/index": "0"},
        {"elastrain.dev/job": "demo", "elastrain.dev/role": "worker", "elastrain.dev/index": "two"},
    ],
    ids=["no-labels", "job-only", "no-index", "unknown-role", "index-not-a-number"],
)
def test_pods_without_elastrain_role_and_index_are_ignored(labels: dict[str, str]) -> None:
    assert observe_pod(raw_pod({"phase": "Running"}, labels=labels)) is None


def test_observe_pod_reads_back_what_the_builders_built(make_job: MakeJob) -> None:
    job = make_job().obj()
    assert observe_pod(build_head_pod(job)) == ObservedPod(name="demo-head", role=Role.HEAD, index=0, phase="Pending")
    assert observe_pod(build_worker_pod(job, 5)) == ObservedPod(
        name="demo-worker-5", role=Role.WORKER, index=5, phase="Pending"
    )
    assert observe_pod(build_head_pod(job, 2)) == ObservedPod(
        name="demo-head-r2", role=Role.HEAD, index=0, phase="Pending", attempt=2
    )
    assert observe_pod(build_worker_pod(job, 5, 1)) == ObservedPod(
        name="demo-worker-5-r1", role=Role.WORKER, index=5, phase="Pending", attempt=1
    )


@pytest.mark.parametrize(
    ("value", "attempt"),
    [(None, 0), ("0", 0), ("3", 3), ("12", 12), ("three", 0), ("", 0)],
    ids=["missing", "zero", "three", "twelve", "not-a-number", "empty"],
)
def test_attempt_label(value: str | None, attempt: int) -> None:
    labels = dict(LABELS) if value is None else {**LABELS, "elastrain.dev/attempt": value}
    observed = observe_pod(raw_pod({"phase": "Running"}, labels=labels))
    assert observed is not None
    assert (observed.index, observed.attempt) == (2, attempt)


# -- nodes ------------------------------------------------------------------------------------------------

NOT_READY_SINCE = "2026-01-01T11:58:30Z"  # as the API server writes it


def raw_node(name: str, ready: str | None, since: str | None = NOT_READY_SINCE) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        cond: dict[str, Any] = {"type": "Ready", "status": ready, "reason": "NodeStatusUnknown"}
        if since is not None:
            cond["lastTransitionTime"] = since
        conditions.append(cond)
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "status": {"conditions": conditions}}


NODES = {
    "kind": "NodeList",
    "items": [
        raw_node("gpu-node-0", "True"),
        raw_node("gpu-node-1", "Unknown"),
        raw_node("gpu-node-2", "False", since=None),
        raw_node("gpu-node-3", None),
    ],
}
SINCE = datetime(2026, 1, 1, 11, 58, 30, tzinfo=UTC)


def test_node_problems() -> None:
    assert node_problems(NODES) == {
        "gpu-node-0": None,
        "gpu-node-1": NodeProblem("node gpu-node-1 NotReady (Unknown)", SINCE),
        "gpu-node-2": NodeProblem("node gpu-node-2 NotReady (False)", None),
        "gpu-node-3": None,  # no Ready condition yet: still registering, not lost
    }
    assert node_problems({"items": []}) == {}
    assert node_problems({}) == {}


def on_node(node: str | None, phase: str = "Running", **meta: Any) -> dict[str, Any]:
    pod = raw_pod({"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]}, **meta)
    if node is not None:
        pod["spec"]["nodeName"] = node
    return pod


@pytest.mark.parametrize(
    ("pod", "nodes", "lost", "since", "is_lost"),
    [
        (on_node("gpu-node-0"), NODES, None, None, False),
        (on_node("gpu-node-1"), NODES, "node gpu-node-1 NotReady (Unknown)", SINCE, True),
        (on_node("gpu-node-2"), NODES, "node gpu-node-2 NotReady (False)", None, True),
        (on_node("gpu-node-9"), NODES, "node gpu-node-9 deleted", None, True),
        (on_node("gpu-node-9"), {"items": []}, "node gpu-node-9 deleted", None, True),
        (on_node("gpu-node-1"), None, None, None, False),
        (on_node(None, phase="Pending"), NODES, None, None, False),
        (
            on_node("gpu-node-1", deletionTimestamp="2026-01-01T12:00:00Z"),
            NODES,
            "node gpu-node-1 NotReady (Unknown)",
            SINCE,
            False,
        ),
        (on_node("gpu-node-9", phase="Failed"), NODES, "node gpu-node-9 deleted", None, False),
    ],
    ids=[
        "ready-node",
        "not-ready-unknown",
        "not-ready-false",
        "deleted-node",
        "no-nodes-at-all",
        "nodes-not-judged",
        "not-scheduled-yet",
        "terminating-on-a-lost-node",
        "failed-on-a-deleted-node",
    ],
)
def test_observe_pod_on_a_lost_node(
    pod: dict[str, Any],
    nodes: dict[str, Any] | None,
    lost: str | None,
    since: datetime | None,
    is_lost: bool,
) -> None:
    observed = observe_pod(pod, None if nodes is None else node_problems(nodes))
    assert observed is not None
    assert (observed.node_lost, observed.lost_since, observed.lost) == (lost, since, is_lost)
    assert observed.node == pod["spec"].get("nodeName")


@pytest.mark.parametrize(
    ("status", "want"),
    [
        ({"phase": "Failed", "containerStatuses": [terminated(1)]}, Blame.APPLICATION),
        ({"phase": "Failed", "containerStatuses": [terminated(137, "OOMKilled")]}, Blame.INFRASTRUCTURE),
        ({"phase": "Failed", "containerStatuses": [terminated(143)]}, Blame.INFRASTRUCTURE),
        ({"phase": "Failed", "reason": "Evicted", "containerStatuses": [terminated(1)]}, Blame.INFRASTRUCTURE),
        ({"phase": "Failed", "reason": "NodeLost"}, Blame.INFRASTRUCTURE),
        ({"phase": "Failed", "reason": "Terminated", "containerStatuses": [terminated(2)]}, Blame.INFRASTRUCTURE),
    ],
    ids=["exit-1", "oom", "sigterm", "evicted", "node-lost", "node-shutdown"],
)
def test_blame_of_a_converted_pod(status: dict[str, Any], want: Blame) -> None:
    observed = observe_pod(raw_pod(status))
    assert observed is not None
    assert blame(observed) is want


@pytest.mark.parametrize(
    ("status", "want"),
    [
        ({}, False),
        ({"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]}, False),
        ({"phase": "Running"}, False),
        ({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}, False),
        # What the node lifecycle controller does to the pods of a node it marks NotReady.
        ({"phase": "Running", "conditions": [{"type": "Ready", "status": "False", "reason": "NodeNotReady"}]}, True),
        ({"phase": "Failed", "conditions": [{"type": "Ready", "status": "False"}]}, False),
    ],
    ids=["empty", "pending", "running-no-conditions", "running-ready", "running-not-ready", "failed"],
)
def test_running_but_not_ready(status: dict[str, Any], want: bool) -> None:
    assert running_but_not_ready(status) is want
