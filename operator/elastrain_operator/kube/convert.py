"""Raw API objects -> the reconcile layer's values. The only place that reads pod dicts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from elastrain_operator.api import Label, Role
from elastrain_operator.reconcile.observed import ObservedPod


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        if "terminated" in state:
            terminated: Mapping[str, Any] = state["terminated"]
            return terminated
    return None


def running_but_not_ready(status: Mapping[str, Any]) -> bool:
    """A pod ``status`` that says Running with its Ready condition False (its node may have gone NotReady)."""
    if status.get("phase") != "Running":
        return False
    ready = _condition({"status": status}, "Ready")
    return ready is not None and ready.get("status") == "False"


def _condition(pod: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            found: Mapping[str, Any] = cond
            return found
    return None


@dataclass(frozen=True)
class NodeProblem:
    """Why a node cannot run pods, and since when (its Ready condition's last transition)."""

    reason: str
    since: datetime | None


def node_problems(nodes: Mapping[str, Any]) -> dict[str, NodeProblem | None]:
    """Node name -> None when Ready (or still registering), else its problem ("node N NotReady (Unknown)").

    A node without a Ready condition has never reported: it is joining, not lost, and a pod the
    scheduler placed there in that moment is not a casualty.
    """
    problems: dict[str, NodeProblem | None] = {}
    for node in nodes.get("items", []):
        name = node["metadata"]["name"]
        ready = _condition(node, "Ready")
        if ready is None or ready.get("status") == "True":
            problems[name] = None
            continue
        since = ready.get("lastTransitionTime")
        problems[name] = NodeProblem(
            f"node {name} NotReady ({ready.get('status')})", datetime.fromisoformat(since) if since else None
        )
    return problems


def observe_pod(pod: Mapping[str, Any], nodes: Mapping[str, NodeProblem | None] | None = None) -> ObservedPod | None:
    """The pod as the reconcile layer sees it; None for a pod without elastrain's role/index labels.

    ``nodes`` is :func:`node_problems` of the cluster's nodes; without it, node health is not judged.
    """
    meta = pod.get("metadata", {})
    labels = meta.get("labels") or {}
    try:
        role = Role(labels.get(Label.ROLE, ""))
        index = int(labels.get(Label.INDEX, ""))
    except ValueError:
        return None
    status = pod.get("status", {})
    terminated = _terminated(pod)
    ready = _condition(pod, "Ready")
    scheduled = _condition(pod, "PodScheduled")
    unschedulable = None
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        unschedulable = str(scheduled.get("message") or "no node fits")
    exit_code = terminated.get("exitCode") if terminated else None
    node = pod.get("spec", {}).get("nodeName")
    problem = None
    if nodes is not None and node:
        problem = nodes[node] if node in nodes else NodeProblem(f"node {node} deleted", None)
    try:
        attempt = int(labels.get(Label.ATTEMPT, "0"))
    except ValueError:
        attempt = 0
    return ObservedPod(
        name=str(meta.get("name")),
        role=role,
        index=index,
        phase=str(status.get("phase") or "Pending"),
        ready=bool(ready and ready.get("status") == "True"),
        terminating=meta.get("deletionTimestamp") is not None,
        exit_code=int(exit_code) if exit_code is not None else None,
        reason=status.get("reason") or (terminated.get("reason") if terminated else None),
        message=(terminated.get("message") or None) if terminated else None,
        unschedulable=unschedulable,
        node=node,
        attempt=attempt,
        node_lost=problem.reason if problem else None,
        lost_since=problem.since if problem else None,
        ip=status.get("podIP") or None,
    )
