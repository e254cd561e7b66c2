"""Operator settings, read once from the environment at start-up (documented in docs/operator.md).

A frozen value object: handlers receive it, builders get the few values they need as arguments.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(ValueError):
    """An environment variable has a value the operator cannot use; the message names it and the fix."""


@dataclass(frozen=True)
class OperatorSettings:
    """What an operator deployment can tune."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to watch (ELASTRAIN_NAMESPACES, comma-separated); empty: all namespaces."""
    metrics_port: int = 8080
    """Port of the Prometheus /metrics endpoint (ELASTRAIN_METRICS_PORT); 0 disables it."""
    liveness_port: int = 8081
    """Port of kopf's /healthz liveness endpoint (ELASTRAIN_LIVENESS_PORT); 0 disables it."""
    resync_seconds: float = 2.0
    """Longest pause between two reconciles of one job (ELASTRAIN_RESYNC_SECONDS)."""
    leader_election: bool = True
    """Take a coordination.k8s.io Lease before handling jobs, so replicas stand by (ELASTRAIN_LEADER_ELECTION)."""
    lease_name: str = "elastrain-operator"
    """Name of that Lease (ELASTRAIN_LEASE_NAME)."""
    lease_namespace: str = "default"
    """Namespace of that Lease (ELASTRAIN_LEASE_NAMESPACE; in a cluster, the operator's own namespace)."""
    lease_seconds: int = 15
    """Lease duration; a standby takes over this long after the leader stops renewing (ELASTRAIN_LEASE_SECONDS)."""


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer; set it to a whole number >= {minimum}") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} is below {minimum}; set it to a whole number >= {minimum}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean; set it to true or false")


def load_settings(env: Mapping[str, str] | None = None) -> OperatorSettings:
    """Settings from ``env`` (default: the process environment); raises SettingsError on a bad value."""
    env = os.environ if env is None else env
    namespaces = tuple(ns.strip() for ns in env.get("ELASTRAIN_NAMESPACES", "").split(",") if ns.strip())
    resync_raw = env.get("ELASTRAIN_RESYNC_SECONDS", "")
    try:
        resync = float(resync_raw) if resync_raw else OperatorSettings.resync_seconds
    except ValueError:
        raise SettingsError(f"ELASTRAIN_RESYNC_SECONDS={resync_raw!r} is not a number; set e.g. 2") from None
    if not 0 < resync < math.inf:  # also refuses nan (a busy loop) and inf (Event.wait overflows)
        raise SettingsError(f"ELASTRAIN_RESYNC_SECONDS={resync_raw} must be a positive finite number; set e.g. 2")
    return OperatorSettings(
        namespaces=namespaces,
        metrics_port=_int(env, "ELASTRAIN_METRICS_PORT", OperatorSettings.metrics_port, minimum=0),
        liveness_port=_int(env, "ELASTRAIN_LIVENESS_PORT", OperatorSettings.liveness_port, minimum=0),
        resync_seconds=resync,
        leader_election=_bool(env, "ELASTRAIN_LEADER_ELECTION", OperatorSettings.leader_election),
        lease_name=env.get("ELASTRAIN_LEASE_NAME") or OperatorSettings.lease_name,
        lease_namespace=env.get("ELASTRAIN_LEASE_NAMESPACE") or OperatorSettings.lease_namespace,
        lease_seconds=_int(env, "ELASTRAIN_LEASE_SECONDS", OperatorSettings.lease_seconds, minimum=2),
    )
