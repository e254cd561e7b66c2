"""Trim raw API objects to the fields the operator reads, so the cache costs kilobytes per pod.

Every field :func:`elastrain_operator.kube.convert.observe_pod` and ``node_problems`` read is kept;
the rest (managedFields, the pod spec's containers, env, volumes) is dropped when an object
enters the cache. A test holds these in step with the converters (trimmed and full objects are
observed the same).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from elastrain_operator.api import Label
from elastrain_operator.api.constants import EXPORT_REQUEST_ANNOTATION

_KEPT_META = ("name", "namespace", "uid", "resourceVersion", "generation", "deletionTimestamp")


def _meta(obj: Mapping[str, Any], *, labels: bool) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    kept = {key: meta[key] for key in _KEPT_META if key in meta}
    if labels:
        kept["labels"] = {k: v for k, v in (meta.get("labels") or {}).items() if k.startswith("elastrain.dev/")}
    return kept


def _condition(cond: Mapping[str, Any]) -> dict[str, Any]:
    return {k: cond[k] for k in ("type", "status", "reason", "message", "lastTransitionTime") if k in cond}


def trim_pod(pod: Mapping[str, Any]) -> dict[str, Any]:
    """A pod with its elastrain labels, node, phase, reason, IP, conditions and container terminations."""
    status = pod.get("status") or {}
    containers = []
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            kept = {k: terminated[k] for k in ("exitCode", "reason", "message") if k in terminated}
            containers.append({"state": {"terminated": kept}})
    trimmed_status = {k: status[k] for k in ("phase", "reason", "podIP") if k in status}
    trimmed_status["conditions"] = [_condition(c) for c in status.get("conditions") or []]
    if containers:
        trimmed_status["containerStatuses"] = containers
    spec = pod.get("spec") or {}
    return {
        "metadata": _meta(pod, labels=True),
        "spec": {"nodeName": spec["nodeName"]} if spec.get("nodeName") else {},
        "status": trimmed_status,
    }


def trim_node(node: Mapping[str, Any]) -> dict[str, Any]:
    """A node's name and its Ready condition."""
    conditions = (node.get("status") or {}).get("conditions") or []
    return {
        "metadata": _meta(node, labels=False),
        "status": {"conditions": [_condition(c) for c in conditions if c.get("type") == "Ready"]},
    }


def trim_owned(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A Service or NetworkPolicy: only that it exists, its name and its job label matter."""
    return {"metadata": _meta(obj, labels=True)}


def trim_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """A TrainingJob without managedFields and annotations (its spec and status are all read), but for
    the ``elastrain.dev/export-request`` annotation (an export asked for while it runs)."""
    trimmed = {key: copy.deepcopy(value) for key, value in job.items() if key != "metadata"}
    meta = _meta(job, labels=False)
    meta["labels"] = dict((job.get("metadata") or {}).get("labels") or {})
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    if EXPORT_REQUEST_ANNOTATION in annotations:
        meta["annotations"] = {EXPORT_REQUEST_ANNOTATION: annotations[EXPORT_REQUEST_ANNOTATION]}
    trimmed["metadata"] = meta
    return trimmed


def job_label(obj: Mapping[str, Any]) -> str | None:
    """The ``elastrain.dev/job`` label of a trimmed or full object."""
    label = ((obj.get("metadata") or {}).get("labels") or {}).get(Label.JOB)
    return str(label) if label else None
