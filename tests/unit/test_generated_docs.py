"""The tables of docs/ generated from code (hack/gen_docs.py, run by `make crds`) are up to date, and the
enums they come from are complete: every reason documented, every resize reason named in the API."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

from elastrain_dev.cluster import build_binaries
from elastrain_dev.docblocks import (
    StaleMarkersError,
    begin_marker,
    end_marker,
    render_blocks,
    render_permissions_table,
    replace_block,
)
from elastrain_operator.api import Reason, ResizeRecord
from elastrain_operator.api.reasons import REASON_DOCS, RESIZE_REASONS

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]


@cache
def helm() -> Path:
    return build_binaries() / "helm"


BLOCKS = [(page, name) for page, blocks in render_blocks(helm).items() for name in blocks]


@pytest.mark.parametrize(("page", "name"), BLOCKS, ids=[f"{p}:{n}" for p, n in BLOCKS])
def test_generated_block_is_fresh(page: str, name: str) -> None:
    text = (REPO_ROOT / page).read_text(encoding="utf-8")
    wanted = render_blocks(helm)[page][name]()
    assert replace_block(text, name, wanted) == text, f"{page}: the {name} table is stale; run `make crds`"


def test_every_reason_is_documented() -> None:
    assert set(REASON_DOCS) == set(Reason)


def test_resize_reasons_are_the_ones_the_api_names() -> None:
    description = ResizeRecord.model_fields["reason"].description or ""
    named = {r.value for r in Reason if r.value in description}
    assert named == {r.value for r in RESIZE_REASONS}, description


def test_a_block_without_markers_is_an_error_naming_them() -> None:
    with pytest.raises(StaleMarkersError, match="BEGIN GENERATED reasons"):
        replace_block("# a page\n", "reasons", "| x |\n")
    page = f"before\n{begin_marker('t')}\nold\n{end_marker('t')}\nafter\n"
    assert replace_block(page, "t", "new\n") == f"before\n{begin_marker('t')}\nnew\n{end_marker('t')}\nafter\n"


def test_a_granted_resource_without_a_reason_fails_the_generator() -> None:
    role: dict[str, Any] = {
        "kind": "ClusterRole",
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    }
    with pytest.raises(ValueError, match="grants configmaps"):
        render_permissions_table([role], [])
