"""podman as the images tier uses it: the project's containers.conf, errors that show podman's output."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "images" / "build-images.sh"
CONTAINERS_CONF = REPO_ROOT / "hack" / "images" / "containers.conf"


@dataclass(frozen=True)
class Images:
    operator: str
    trainer: str


def podman(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run podman with the project's containers.conf; raise with its output when ``check`` fails."""
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_in(image: str, command: Sequence[str], *options: str) -> subprocess.CompletedProcess[str]:
    """``podman run --rm`` with ``command`` as the entry point: what the image holds, as its own user."""
    return podman("run", "--rm", "--network", "none", *options, "--entrypoint", command[0], image, *command[1:])
