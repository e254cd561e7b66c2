"""`elastrain-dev` fails in one line naming what went wrong, never with a traceback (no cluster needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from elastrain_dev.cli import one_line
from elastrain_dev.cluster import KubectlError

pytestmark = pytest.mark.unit


def elastrain_dev(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ELASTRAIN_CACHE": str(tmp_path), "ELASTRAIN_CLUSTER": "never-started"}
    code = "import sys; from elastrain_dev.cli import main; sys.argv[0] = 'elastrain-dev'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("args", [("nodes",), ("fail-node", "gpu-node-0"), ("add-nodes", "--count", "1")])
def test_without_a_cluster_the_error_is_one_line_saying_what_to_run(args: tuple[str, ...], tmp_path: Path) -> None:
    proc = elastrain_dev(*args, tmp_path=tmp_path)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"elastrain-dev {args[0]}: no cluster in {tmp_path}/clusters/never-started"), line
    assert "run `make cluster-up` first" in line


def test_a_failed_kubectl_is_reported_by_its_own_last_line() -> None:
    err = KubectlError(
        1, ["kubectl", "label", "node", "x"], "", 'Error from server (NotFound): nodes "no-such-node" not found\n'
    )
    assert one_line(err) == 'Error from server (NotFound): nodes "no-such-node" not found'
    assert one_line(KubectlError(7, ["kubectl"], "", "")) == "kubectl exited with 7"
    assert one_line(subprocess.TimeoutExpired(["kubectl", "wait"], 30)) == "kubectl did not answer within 30 s"
