"""Every shell block a page shows a user is marked, in the page's source, as run by a named test or set
aside with a reason:

    <!-- run: tests/cluster/test_chart_install.py::test_quickstart -->
    <!-- not run: it watches until interrupted -->

The marker sits on the line right above the block's fence. The test it names must exist (and that test
checks the block's commands against what it runs: see test_chart_install.py::quickstart_blocks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((REPO_ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(sh|bash|shell|console)\s*$")
MARKER = re.compile(r"^<!-- (run: (?P<test>\S+::\w+)[^>]*|not run: (?P<why>[^>]+?)) -->$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    marker: str | None
    commands: tuple[str, ...]


def shell_blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if FENCE.match(lines[i]):
            end = lines.index("```", i + 1)
            marker = lines[i - 1] if i and lines[i - 1].startswith("<!--") else None
            body = tuple(line for line in lines[i + 1 : end] if line.strip() and not line.startswith("#"))
            blocks.append(Block(page, i + 1, marker, body))
            i = end
        i += 1
    return blocks


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_shell_block_is_marked_run_or_not_run(page: Path) -> None:
    for block in shell_blocks(page):
        where = f"{page.name}:{block.line}"
        assert block.marker is not None, f"{where}: mark the block <!-- run: FILE::test --> or <!-- not run: why -->"
        match = MARKER.match(block.marker)
        assert match, f"{where}: unreadable marker {block.marker}"
        if match["test"]:
            path, test = match["test"].split("::")
            source = REPO_ROOT / path
            assert source.is_file(), f"{where}: {path} does not exist"
            assert re.search(rf"^def {test}\(", source.read_text(encoding="utf-8"), re.M), f"{where}: no {test}"


def test_the_checker_refuses_an_unmarked_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("Try:\n\n```sh\nkubectl get tj\n```\n\n<!-- not run: forever -->\n```sh\nkubectl get tj -w\n```\n")
    blocks = shell_blocks(page)
    assert [(b.marker, b.commands) for b in blocks] == [
        (None, ("kubectl get tj",)),
        ("<!-- not run: forever -->", ("kubectl get tj -w",)),
    ]
    with pytest.raises(AssertionError, match="mark the block"):
        test_every_shell_block_is_marked_run_or_not_run(page)
