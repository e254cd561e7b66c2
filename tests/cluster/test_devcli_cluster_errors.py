"""`elastrain-dev` against a running local cluster: a node that does not exist is one line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from elastrain_dev.cluster import CACHE_ROOT, LocalCluster


@pytest.mark.parametrize("verb", ["fail-node", "restore-node", "delete-node"])
def test_a_missing_node_is_one_line_from_the_api_server(cluster: LocalCluster, verb: str) -> None:
    assert cluster.state_dir.parent == CACHE_ROOT / "clusters"
    env = {**os.environ, "ELASTRAIN_CLUSTER": cluster.state_dir.name}
    code = "import sys; from elastrain_dev.cli import main; sys.argv[0] = 'elastrain-dev'; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, verb, "no-such-node"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line == f'elastrain-dev {verb}: Error from server (NotFound): nodes "no-such-node" not found', line
