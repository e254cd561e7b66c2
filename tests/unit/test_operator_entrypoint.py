"""``elastrain-operator`` behaves like a tool: --help and --version answer without touching a cluster,
and a bad setting stops it at once with exit code 2 and a message naming the variable and the fix."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from elastrain_operator.settings import setting_variables

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]


def operator(*args: str, env: dict[str, str] | None = None, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The entry point in a fresh process, with a kubeconfig that points nowhere: reaching for a cluster fails."""
    environ = {**os.environ, "KUBECONFIG": str(tmp_path / "no-such-kubeconfig"), **(env or {})}
    code = "import sys; from elastrain_operator.main import main; sys.argv[0] = 'elastrain-operator'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=environ, capture_output=True, text=True, timeout=120, check=False
    )


def test_help_prints_usage_and_every_setting_then_exits(tmp_path: Path) -> None:
    proc = operator("--help", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: elastrain-operator")
    for variable, default, _ in setting_variables():
        assert variable in proc.stdout and default in proc.stdout
    assert proc.stderr == "", "help must not start logging, leader election or kopf"


def test_version_is_the_packages(tmp_path: Path) -> None:
    wanted = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    proc = operator("--version", tmp_path=tmp_path)
    assert (proc.returncode, proc.stdout.strip()) == (0, f"elastrain-operator {wanted}")


def test_an_unknown_argument_is_a_usage_error(tmp_path: Path) -> None:
    proc = operator("--namespace", "x", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "unrecognized arguments: --namespace x" in proc.stderr


@pytest.mark.parametrize(
    ("variable", "value", "fix"),
    # Two processes suffice here: every refusal and its message is tested on load_settings itself
    # (test_operator_settings.py); this checks the entry point turns one into exit 2 and one line.
    [
        ("ELASTRAIN_METRICS_PORT", "99999", "set it to a whole number from 0 to 65535"),
        ("ELASTRAIN_RESYNC_SECONDS", "0", "must be a positive finite number"),
    ],
)
def test_a_bad_setting_exits_2_naming_the_variable_and_the_fix(
    variable: str, value: str, fix: str, tmp_path: Path
) -> None:
    proc = operator(env={variable: value}, tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"elastrain-operator: {variable}") and fix in line, line
