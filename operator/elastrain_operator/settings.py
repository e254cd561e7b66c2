"""Operator settings, read once from the environment at start-up (documented in docs/operator.md).

A frozen value object: handlers receive it, builders get the few values they need as arguments.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields


class SettingsError(ValueError):
    """An environment variable has a value the operator cannot use; the message names it and the fix."""


def _env(variable: str, meaning: str) -> dict[str, str]:
    """A setting's field metadata: the environment variable it is read from and what it does."""
    return {"env": variable, "help": meaning}


@dataclass(frozen=True)
class OperatorSettings:
    """What an operator deployment can tune."""

    namespaces: tuple[str, ...] = field(
        default=(), metadata=_env("ELASTRAIN_NAMESPACES", "comma-separated namespaces to watch; empty: all")
    )
    metrics_port: int = field(
        default=8080, metadata=_env("ELASTRAIN_METRICS_PORT", "port of the Prometheus /metrics endpoint; 0 disables it")
    )
    liveness_port: int = field(
        default=8081, metadata=_env("ELASTRAIN_LIVENESS_PORT", "port of kopf's /healthz endpoint; 0 disables it")
    )
    resync_seconds: float = field(
        default=2.0,
        metadata=_env(
            "ELASTRAIN_RESYNC_SECONDS",
            "longest pause between two rounds of one job (seconds, positive): a round reads only the watch-fed "
            "cache and the head's progress; watch events of the job, its pods and their nodes wake it earlier",
        ),
    )
    watch_seconds: int = field(
        default=300,
        metadata=_env(
            "ELASTRAIN_WATCH_SECONDS",
            "how long one watch request (the cache's, and kopf's of jobs) lasts before it is renewed from its "
            "last resourceVersion (>= 10)",
        ),
    )
    create_concurrency: int = field(
        default=16,
        metadata=_env("ELASTRAIN_CREATE_CONCURRENCY", "pods the operator creates at once, all jobs together (1 to 64)"),
    )
    leader_election: bool = field(
        default=True,
        metadata=_env(
            "ELASTRAIN_LEADER_ELECTION", "take a Lease before handling jobs (true/false, 1/0, yes/no, on/off)"
        ),
    )
    lease_name: str = field(default="elastrain-operator", metadata=_env("ELASTRAIN_LEASE_NAME", "name of that Lease"))
    lease_namespace: str = field(
        default="default", metadata=_env("ELASTRAIN_LEASE_NAMESPACE", "its namespace (in a cluster: the operator's)")
    )
    lease_seconds: int = field(
        default=15, metadata=_env("ELASTRAIN_LEASE_SECONDS", "lease duration (>= 2); a standby takes over after it")
    )


def setting_variables() -> list[tuple[str, str, str]]:
    """(environment variable, default, meaning) of every setting, in order: for --help and the docs."""
    rows = []
    for f in fields(OperatorSettings):
        default = ",".join(f.default) or "(all)" if isinstance(f.default, tuple) else str(f.default).lower()
        rows.append((f.metadata["env"], default, f.metadata["help"]))
    return rows


#: A DNS-1123 label: what a namespace name must be.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
#: A DNS-1123 subdomain: what a Lease name must be.
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_MAX_PORT = 65535


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    wanted = f"a whole number from {minimum} to {maximum}" if maximum is not None else f"a whole number >= {minimum}"
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer; set it to {wanted}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise SettingsError(f"{name}={value} is out of range; set it to {wanted}")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    """A TCP port, or 0 for "disabled"."""
    return _int(env, name, default, minimum=0, maximum=_MAX_PORT)


def _name(env: Mapping[str, str], name: str, default: str, *, pattern: re.Pattern[str], what: str) -> str:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    if not pattern.match(raw):
        raise SettingsError(f"{name}={raw!r} is not a valid {what}; use lower-case letters, digits and '-'")
    return raw


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
    for ns in namespaces:
        if not _DNS_LABEL.match(ns):
            raise SettingsError(
                f"ELASTRAIN_NAMESPACES names {ns!r}, which is not a namespace name; "
                "list namespaces separated by commas, e.g. team-a,team-b"
            )
    resync_raw = env.get("ELASTRAIN_RESYNC_SECONDS", "")
    try:
        resync = float(resync_raw) if resync_raw else OperatorSettings.resync_seconds
    except ValueError:
        raise SettingsError(f"ELASTRAIN_RESYNC_SECONDS={resync_raw!r} is not a number; set e.g. 2") from None
    if not 0 < resync < math.inf:  # also refuses nan (a busy loop) and inf (Event.wait overflows)
        raise SettingsError(f"ELASTRAIN_RESYNC_SECONDS={resync_raw} must be a positive finite number; set e.g. 2")
    metrics_port = _port(env, "ELASTRAIN_METRICS_PORT", OperatorSettings.metrics_port)
    liveness_port = _port(env, "ELASTRAIN_LIVENESS_PORT", OperatorSettings.liveness_port)
    if metrics_port and metrics_port == liveness_port:
        raise SettingsError(
            f"ELASTRAIN_METRICS_PORT and ELASTRAIN_LIVENESS_PORT are both {metrics_port}; "
            "give them different ports (or 0 to disable one)"
        )
    return OperatorSettings(
        namespaces=namespaces,
        metrics_port=metrics_port,
        liveness_port=liveness_port,
        resync_seconds=resync,
        watch_seconds=_int(env, "ELASTRAIN_WATCH_SECONDS", OperatorSettings.watch_seconds, minimum=10),
        create_concurrency=_int(
            env, "ELASTRAIN_CREATE_CONCURRENCY", OperatorSettings.create_concurrency, minimum=1, maximum=64
        ),
        leader_election=_bool(env, "ELASTRAIN_LEADER_ELECTION", OperatorSettings.leader_election),
        lease_name=_name(
            env, "ELASTRAIN_LEASE_NAME", OperatorSettings.lease_name, pattern=_DNS_SUBDOMAIN, what="Lease name"
        ),
        lease_namespace=_name(
            env,
            "ELASTRAIN_LEASE_NAMESPACE",
            OperatorSettings.lease_namespace,
            pattern=_DNS_LABEL,
            what="namespace name",
        ),
        lease_seconds=_int(env, "ELASTRAIN_LEASE_SECONDS", OperatorSettings.lease_seconds, minimum=2),
    )
