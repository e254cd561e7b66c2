"""Kubeconfig files for the local cluster's clients."""

from __future__ import annotations

from pathlib import Path

import yaml

from elastrain_dev.certs import CertPair


def write_kubeconfig(path: Path, *, server: str, ca: Path, client: CertPair, user: str) -> Path:
    """Write a single-context kubeconfig that authenticates with a client certificate."""
    return _write(path, server, ca, user, {"client-certificate": str(client.cert), "client-key": str(client.key)})


def write_token_kubeconfig(path: Path, *, server: str, ca: Path, token: str, user: str) -> Path:
    """Write a single-context kubeconfig that authenticates with a bearer token (a ServiceAccount's)."""
    return _write(path, server, ca, user, {"token": token})


def _write(path: Path, server: str, ca: Path, user: str, credentials: dict[str, str]) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "elastrain", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "elastrain", "context": {"cluster": "elastrain", "user": user}}],
        "current-context": "elastrain",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
