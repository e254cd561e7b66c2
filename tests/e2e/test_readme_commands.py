"""README's commands, run as a user runs them: make targets and the elastrain-dev node helpers.

`make demo` and `make test` are run by the demo and by CI; this covers the rest of README's table.
The cluster gets a name of its own (ELASTRAIN_CLUSTER) so a developer's `make cluster-up` is untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from elastrain_dev.cluster import REPO_ROOT
from elastrain_dev.wait import until


def _make(*args: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        ["make", "-s", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert proc.returncode == 0, f"make {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_cluster_targets_and_node_helpers(tmp_path: Path) -> None:
    env = {**os.environ, "ELASTRAIN_CLUSTER": f"readme-{os.getpid()}"}
    helper = str(Path(sys.executable).parent / "elastrain-dev")  # the venv's, as README says
    out = _make("cluster-up", env=env)
    try:
        last = out.strip().splitlines()[-1]
        assert last.startswith("export KUBECONFIG="), out
        kubeconfig = last.removeprefix("export KUBECONFIG=")
        kubectl_env = {**env, "KUBECONFIG": kubeconfig}
        bin_dir = (
            subprocess.run(
                ["bash", "hack/build-controlplane.sh"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
            )
            .stdout.strip()
            .splitlines()[-1]
        )

        def node(name: str) -> dict[str, Any] | None:
            proc = subprocess.run(
                [f"{bin_dir}/kubectl", "get", "node", name, "-o", "json"],
                env=kubectl_env,
                capture_output=True,
                text=True,
                check=False,
            )
            return json.loads(proc.stdout) if proc.returncode == 0 else None

        def ready(name: str) -> str:
            conditions = (node(name) or {}).get("status", {}).get("conditions", [])
            return next((c["status"] for c in conditions if c["type"] == "Ready"), "missing")

        assert ready("gpu-node-0") == "True"
        assert (node("gpu-node-0") or {})["status"]["capacity"]["nvidia.com/gpu"] == "8"
        subprocess.run([helper, "fail-node", "gpu-node-1"], env=env, check=True)
        until(lambda: ready("gpu-node-1") == "Unknown", what="gpu-node-1 NotReady", timeout=60)
        subprocess.run([helper, "restore-node", "gpu-node-1"], env=env, check=True)
        until(lambda: ready("gpu-node-1") == "True", what="gpu-node-1 Ready again", timeout=60)
        added = subprocess.run(
            [helper, "add-nodes", "--count", "1"], env=env, check=True, capture_output=True, text=True
        ).stdout.split()
        assert added == ["gpu-node-4"]
        subprocess.run([helper, "delete-node", "gpu-node-4"], env=env, check=True)
        until(lambda: node("gpu-node-4") is None, what="gpu-node-4 deleted", timeout=60)
        assert "gpu-node-3" in _make("cluster-up", env=env)  # a second cluster-up reuses the running one
    finally:
        _make("cluster-down", env=env)
    assert not (Path(kubeconfig).exists())


def test_make_bench_prints_a_table_writes_json_and_ends_with_a_summary() -> None:
    out = _make("bench", "BENCH=cluster_startup", env=dict(os.environ))
    lines = out.strip().splitlines()
    assert lines[-1].startswith("summary: build_cached"), lines[-3:]
    assert any(line.startswith("stage") and "median" in line for line in lines)
    result = json.loads((REPO_ROOT / "benchmarks" / "results" / "cluster_startup.json").read_text())
    assert result["stats"]["notready"]["median"] > 0
    assert result["stats"]["evicted"]["median"] > 0


def test_make_lint_and_make_crds_leave_the_tree_clean() -> None:
    env = dict(os.environ)
    _make("lint", env=env)
    generated = [
        "crds",
        "helm/elastrain/templates/crds",
        "helm/elastrain/README.md",
        "docs/api-reference.md",
        "docs/operations.md",  # its reasons and permissions tables (hack/gen_docs.py)
        "docs/operator.md",  # its settings table
    ]
    before = subprocess.run(
        ["git", "status", "--porcelain", "--", *generated], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    _make("crds", env=env)
    after = subprocess.run(
        ["git", "status", "--porcelain", "--", *generated], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert after == before, f"make crds changed generated files; commit what it writes:\n{after}"
