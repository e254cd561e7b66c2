"""Raw API objects -> the reconcile layer's values. The only place that reads pod dicts."""

from __future__ import annotations

from collections.abc import Mapping
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


def _condition(pod: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            found: Mapping[str, Any] = cond
            return found
    return None


def observe_pod(pod: Mapping[str, Any]) -> ObservedPod | None:
    """The pod as the reconcile layer sees it; None for a pod without elastrain's role/index labels."""
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
    return ObservedPod(
        name=str(meta.get("name")),
        role=role,
        index=index,
        phase=str(status.get("phase") or "Pending"),
        ready=bool(ready and ready.get("status") == "True"),
        terminating=meta.get("deletionTimestamp") is not None,
        exit_code=int(exit_code) if exit_code is not None else None,
        reason=status.get("reason") or (terminated.get("reason") if terminated else None),
        unschedulable=unschedulable,
        node=pod.get("spec", {}).get("nodeName"),
    )
