"""helm/elastrain/README.md is what hack/gen_chart_readme.py renders from values.yaml, and every value is documented."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path
from types import ModuleType

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "hack" / "gen_chart_readme.py"
CHART = REPO_ROOT / "helm" / "elastrain"


def load_generator() -> ModuleType:
    spec = spec_from_file_location("gen_chart_readme", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_chart(tmp_path: Path) -> Path:
    shutil.copytree(CHART, tmp_path / "helm" / "elastrain")
    return tmp_path


def test_readme_is_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_every_value_appears_in_the_readme_with_its_default() -> None:
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert "| `replicaCount` | int | `2` |" in readme
    assert "| `crds.enabled` | bool | `true` |" in readme
    for top in values:
        assert f"| `{top}" in readme, f"{top} is missing from the chart README"


def test_check_names_a_stale_readme(tmp_path: Path) -> None:
    gen = load_generator()
    root = copy_chart(tmp_path)
    values = root / "helm/elastrain/values.yaml"
    values.write_text(
        values.read_text().replace("# -- Operator replicas.", "# -- How many operator replicas."), encoding="utf-8"
    )
    assert gen.main(["--check"], root=root) == 1
    assert gen.main([], root=root) == 0
    assert "How many operator replicas." in (root / "helm/elastrain/README.md").read_text()
    assert gen.main(["--check"], root=root) == 0


def test_an_undocumented_value_is_refused(tmp_path: Path) -> None:
    gen = load_generator()
    root = copy_chart(tmp_path)
    values = root / "helm/elastrain/values.yaml"
    values.write_text(values.read_text() + "extra:\n  knob: 3\n", encoding="utf-8")
    before = (root / "helm/elastrain/README.md").read_text()
    assert gen.main([], root=root) == 1
    assert (root / "helm/elastrain/README.md").read_text() == before


def test_parse_docs_follows_nesting() -> None:
    gen = load_generator()
    docs = gen.parse_docs("a:\n  # -- inner\n  b: 1\n# -- top\nc:\n  d: 2\n")
    assert docs == {"a.b": "inner", "c": "top"}
