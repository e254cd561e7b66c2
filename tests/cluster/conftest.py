"""Fixtures of the cluster tier that are about elastrain's own resources."""

from __future__ import annotations

from pathlib import Path

import pytest

from elastrain_dev.cluster import LocalCluster

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = REPO_ROOT / "crds" / "trainingjobs.elastrain.dev.yaml"


@pytest.fixture(scope="session")
def trainingjob_crd(cluster: LocalCluster) -> str:
    """Install the generated TrainingJob CRD (as `make crds` wrote it) and wait until it is served."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    cluster.kubectl("wait", "--for", "condition=established", "--timeout=60s", "crd/trainingjobs.elastrain.dev")
    return "trainingjobs.elastrain.dev"
