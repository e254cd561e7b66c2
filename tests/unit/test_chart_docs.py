"""The user docs that come with the chart: links resolve, every condition reason has a troubleshooting row,
and the commands the docs give for the chart match the chart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from elastrain_operator.api.constants import Reason

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = REPO_ROOT / "docs"
PAGES = ["quickstart.md", "concepts.md", "operations.md", "architecture.md", "development.md", "images.md"]
CHART_README = REPO_ROOT / "helm" / "elastrain" / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {slug(m[1]) for m in re.finditer(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", [DOCS / p for p in PAGES] + [CHART_README], ids=[*PAGES, "chart-README"])
def test_relative_links_resolve(page: Path) -> None:
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: link {target} points nowhere"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{page.name}: {target}: no heading #{anchor} in {resolved.name}"


def test_every_condition_reason_has_a_troubleshooting_row() -> None:
    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    section = text.split("## Troubleshooting by condition reason", 1)[1]
    rows = set(re.findall(r"^\| `(\w+)`", section, flags=re.M)) | set(
        re.findall(r"^\| `\w+`, `(\w+)`", section, flags=re.M)
    )
    missing = {r.value for r in Reason} - rows
    assert not missing, f"docs/operations.md has no troubleshooting row for {sorted(missing)}"


def test_the_docs_name_the_objects_the_chart_creates() -> None:
    """Release "elastrain" in elastrain-system: Deployment and Lease names used in the docs are the chart's."""
    values = (REPO_ROOT / "helm/elastrain/values.yaml").read_text(encoding="utf-8")
    assert re.search(r"^    leaseName: elastrain-operator$", values, flags=re.M)
    for page in ("quickstart.md", "operations.md"):
        text = (DOCS / page).read_text(encoding="utf-8")
        assert "get lease elastrain-operator" in text
        assert "helm/elastrain" in text
