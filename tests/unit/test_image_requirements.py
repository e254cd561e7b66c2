"""hack/images/requirements.py, which the images' dependency stages run to install an extra's dependencies
from pyproject.toml alone (before the sources are copied): it must list exactly what `pip install .[extra]`
would pull, or the project stage's `pip check` fails the build."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "hack/images/requirements.py"
PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def requirements_of(pyproject: Path, extra: str) -> subprocess.CompletedProcess[str]:
    # The images run it with a bare python3 and the standard library: so does this test.
    command = [sys.executable, "-I", str(SCRIPT), str(pyproject), extra]
    return subprocess.run(command, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(("extra", "other"), [("operator", "trainer"), ("trainer", "operator")])
def test_an_extra_gets_the_core_and_its_own_dependencies_only(extra: str, other: str) -> None:
    result = requirements_of(REPO_ROOT / "pyproject.toml", extra)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    extras = PROJECT["optional-dependencies"]
    assert lines == PROJECT["dependencies"] + extras[extra]
    assert not set(lines) & set(extras[other])


def test_references_to_the_projects_own_extras_are_expanded(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "Elastrain"\ndependencies = ["a>=1"]\n'
        "[project.optional-dependencies]\n"
        'x = ["b"]\ny = ["c", "a>=1"]\nall = ["elastrain[x, y]", "d", "elastrain[x]"]\n',
        encoding="utf-8",
    )
    result = requirements_of(pyproject, "all")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["a>=1", "d", "b", "c"]


def test_an_unknown_extra_names_the_table_and_the_known_extras() -> None:
    result = requirements_of(REPO_ROOT / "pyproject.toml", "gpu")
    assert result.returncode != 0
    assert "[project.optional-dependencies] has no extra 'gpu'" in result.stderr
    assert "pass one of them" in result.stderr
    assert "'operator'" in result.stderr and "'trainer'" in result.stderr
