"""Fixtures of the trainer tier: a real local Ray cluster with simulated worker pods (one Ray node each)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("RUST_LOG", "warn")  # torchft's native logs, read when torchft loads

from elastrain_trainer.localmode import LocalCluster


@pytest.fixture(scope="module")
def ray_pods() -> Iterator[LocalCluster]:
    """A Ray head without worker resources and two worker pods of two ranks each."""
    cluster = LocalCluster(pods=2, ranks_per_pod=2)
    try:
        yield cluster
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def two_pods() -> Iterator[LocalCluster]:
    """A Ray head without worker resources and two worker pods of one rank each."""
    cluster = LocalCluster(pods=2, ranks_per_pod=1)
    try:
        yield cluster
    finally:
        cluster.shutdown()
