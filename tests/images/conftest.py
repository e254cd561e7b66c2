"""Fixtures of the images tier: elastrain's real container images, built once per machine and run with podman.

``images`` runs hack/images/build-images.sh, the script `make images` runs: it installs podman when it is
missing, builds a local Debian base (no registry is reachable here) and skips an image whose inputs
(sources, Dockerfile, scripts) have not changed, so a warm session starts in seconds.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.images.containers import BUILD_SCRIPT, Images


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A cold build of the trainer image (torch, Ray) takes many minutes on 2 loaded cores; the first test pays.
    for item in items:
        if "tests/images/" in str(item.path):
            item.add_marker(pytest.mark.timeout(3600))


@pytest.fixture(scope="session")
def images() -> Images:
    """elastrain/operator and elastrain/trainer, as `make images` builds them (cached by a hash of the inputs)."""
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "operator", "trainer"], capture_output=True, text=True, check=False, timeout=3600
    )
    assert proc.returncode == 0, f"{BUILD_SCRIPT} failed:\n{proc.stderr[-6000:]}"
    operator, trainer = proc.stdout.split()
    return Images(operator=operator, trainer=trainer)


@pytest.fixture
def writable_dir(tmp_path: Path) -> Iterator[Path]:
    """A host directory the image's user (uid 1000) can write: the container's only writable volume."""
    path = tmp_path / "writable"
    path.mkdir()
    os.chown(path, 1000, 1000)
    yield path
