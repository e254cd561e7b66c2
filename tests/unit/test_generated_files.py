"""The CRD, the chart's CRD copy and the API reference on disk are what the models generate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from elastrain_operator.api.generated import (
    CHART_CRD_CLOSE,
    CHART_CRD_OPEN,
    CHART_CRD_PATH,
    CRD_PATH,
    HELM_KEEP_ANNOTATION,
    render_generated_files,
)

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
GENERATED = render_generated_files()


@pytest.mark.parametrize("relative", sorted(GENERATED))
def test_generated_file_is_up_to_date(relative: str) -> None:
    path = REPO_ROOT / relative
    assert path.exists(), f"{relative} is missing: run `make crds`"
    assert path.read_text(encoding="utf-8") == GENERATED[relative], (
        f"{relative} is stale: the models changed since it was generated; run `make crds`"
    )


def test_chart_copy_is_the_crd_behind_crds_enabled_and_kept_on_uninstall() -> None:
    chart = GENERATED[CHART_CRD_PATH]
    assert chart.startswith(CHART_CRD_OPEN) and chart.endswith(CHART_CRD_CLOSE)
    body = yaml.safe_load(chart.removeprefix(CHART_CRD_OPEN).removesuffix(CHART_CRD_CLOSE))
    assert body["metadata"].pop("annotations") == HELM_KEEP_ANNOTATION
    assert body == yaml.safe_load(GENERATED[CRD_PATH])


def test_generation_is_deterministic() -> None:
    assert render_generated_files() == GENERATED


def test_check_mode_passes_on_a_fresh_tree() -> None:
    """The writer's --check agrees with this test (the two must not drift apart)."""
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "hack/gen_crds.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_check_mode_names_a_stale_file(tmp_path: Path) -> None:
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("gen_crds", REPO_ROOT / "hack/gen_crds.py")
    assert spec is not None and spec.loader is not None
    gen_crds = module_from_spec(spec)
    spec.loader.exec_module(gen_crds)
    # An empty tree: every file is stale.
    assert gen_crds.main(["--check"], root=tmp_path) == 1
    assert not any(tmp_path.iterdir()), "--check must not write"
    assert gen_crds.main([], root=tmp_path) == 0
    assert gen_crds.main(["--check"], root=tmp_path) == 0
    assert (tmp_path / CRD_PATH).read_text(encoding="utf-8") == GENERATED[CRD_PATH]
