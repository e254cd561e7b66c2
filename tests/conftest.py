"""Shared fixtures. Each test directory is a tier and gets its marker automatically:
tests/unit -> unit, tests/cluster -> cluster, tests/trainer -> trainer, tests/e2e -> e2e,
tests/images -> images.

The ``cluster`` fixture brings a real control plane up once per session (built from Go modules,
see hack/build-controlplane.sh) and tears it down at the end; ``namespace`` is a fresh
namespace per test.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from elastrain_dev.cluster import CACHE_ROOT, LocalCluster
from elastrain_dev.nodes import bring_up

TIERS = ("unit", "cluster", "trainer", "e2e", "images")
TESTS_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        relative = Path(str(item.path)).resolve().relative_to(TESTS_DIR)
        tier = relative.parts[0] if len(relative.parts) > 1 else None
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """A real control plane with 4 fake nodes of 8 GPUs each, for the whole session."""
    local = LocalCluster(CACHE_ROOT / "clusters" / f"pytest-{os.getpid()}")
    bring_up(local, nodes=4, gpus=8)
    try:
        yield local
    finally:
        local.down()


@pytest.fixture
def namespace(cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, deleted (without waiting) afterwards."""
    slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{slug}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    # Pods cannot be created before the namespace's default service account exists.
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=60s")
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
