"""Every page a user reads points at things that exist: relative links (and their #sections) resolve,
and every repository file, directory or test a page names in backticks is there.

Paths are looked up from the repository root, then from the packages' own roots (pages say
`builders/pods.py` for operator/elastrain_operator/builders/pods.py); `FILE::test_name` must name a
test function in FILE.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(
    [*(REPO_ROOT / "docs").glob("*.md"), REPO_ROOT / "README.md", REPO_ROOT / "helm/elastrain/README.md"],
)
#: Where a path a page names may start, besides the repository root.
BASES = [
    REPO_ROOT / "operator/elastrain_operator",
    REPO_ROOT / "trainer_image/elastrain_trainer",
    REPO_ROOT / "hack",
    REPO_ROOT / "docs",
    REPO_ROOT / "tests",
    REPO_ROOT / "helm/elastrain/templates",
]
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\n]+)`")
PATH_LIKE = re.compile(r"^[\w.-]+(/[\w.-]+)*/?(::\w+)?$")
FILE_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".json", ".sh", ".txt", ".toml", ".tpl", ".png", ".go", ".mod")
#: Paths that are not the repository's, and why.
OUTSIDE = {
    "elastrain.dev/": "a label and annotation prefix",
    "bin/": "the venv's bin directory",
    "benchmarks/results/": "written by the benchmarks",
    "hack/lib/version.sh": "upstream Kubernetes' script",
    "manifest.json": "written into each checkpoint",
    "driver.json": "written into each checkpoint",
    "grad_scaler.json": "written into each checkpoint",
    "kwok-stages.yaml": "written beside the control-plane binaries",
    "config.json": "a Hugging Face model directory's file",
    "tokenizer.json": "a Hugging Face tokenizer directory's file",
    "tokenizer_config.json": "a Hugging Face tokenizer directory's file",
    "elastrain_model.json": "written into an export of a builtin or python model",
    "final/": "the export directory the head writes",
    ".json": "a file ending",
    ".txt": "a file ending",
    ".md": "a file ending",
}
#: A placeholder a user replaces: NAME-worker-0, CHECKPOINT/runs/HEAD_POD.json, JOB-loss.png.
PLACEHOLDER = re.compile(r"[A-Z]{3,}[-/_]|[-/_][A-Z]{3,}\b")


def ids(pages: list[Path]) -> list[str]:
    return [str(p.relative_to(REPO_ROOT)) for p in pages]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def prose(page: Path) -> str:
    """The page without its fenced code blocks."""
    return re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)


def text_outside_code(page: Path) -> str:
    """The prose without inline code either (a regex in backticks is not a link)."""
    return CODE.sub("", prose(page))


def anchors(page: Path) -> set[str]:
    return {slug(m[1]) for m in re.finditer(r"^#+ (.+)$", prose(page), flags=re.M)}


def named_paths(page: Path) -> list[str]:
    """Backticked words of the page that name a repository file or directory."""
    found = []
    for code in CODE.findall(prose(page)):
        token = code.strip()
        outside = token in OUTSIDE or any(token.startswith(p) for p in OUTSIDE if p.endswith("/"))
        if not PATH_LIKE.match(token) or token.startswith(("http", "/")) or outside:
            continue
        if PLACEHOLDER.search(token):
            continue
        plain = token.split("::", 1)[0]
        if plain.endswith(FILE_SUFFIXES) or ("/" in plain and plain.endswith("/")):
            found.append(token)
    return found


def resolve(path: str, page: Path) -> Path | None:
    """The file or directory ``path`` names: from the root or a package root; a bare file name anywhere."""
    for base in (REPO_ROOT, page.parent, *BASES):
        candidate = base / path
        if candidate.exists():
            return candidate
    if "/" not in path:
        return next((p for p in tracked_files() if p.name == path), None)
    return None


@cache
def tracked_files() -> tuple[Path, ...]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return tuple(REPO_ROOT / line for line in out.splitlines())


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_relative_links_and_their_sections_resolve(page: Path) -> None:
    for target in LINK.findall(text_outside_code(page)):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: link {target} points nowhere"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{page.name}: {target}: no heading #{anchor} in {resolved.name}"


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_every_file_and_test_a_page_names_exists(page: Path) -> None:
    missing = []
    for token in named_paths(page):
        plain, _, test = token.partition("::")
        resolved = resolve(plain, page)
        has_test = resolved is not None and (
            not test or re.search(rf"^def {re.escape(test)}\(", resolved.read_text(encoding="utf-8"), re.M)
        )
        if not has_test:
            missing.append(token)
    assert not missing, f"{page.relative_to(REPO_ROOT)} names what the repository does not have: {missing}"


def test_the_checker_notices_a_missing_file(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("See `DESIGN.md` (sections 4 and 5), `builders/pods.py` and `tests/unit/nothing.py`.\n")
    names = named_paths(page)
    assert names == ["DESIGN.md", "builders/pods.py", "tests/unit/nothing.py"]
    assert [n for n in names if resolve(n, page) is None] == ["DESIGN.md", "tests/unit/nothing.py"]


def test_every_page_quotes_the_same_cold_build_time() -> None:
    """README's measured table is the one source; other pages quote its range, never a figure of their own."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    (row,) = [line for line in readme.splitlines() if line.startswith("| control plane cold build")]
    (quoted,) = re.findall(r"\b(\d+ to \d+ min)", row)
    for page in PAGES:
        for sentence in re.split(r"(?<=[.;])\s", prose(page).replace("\n", " ")):
            if "cold" in sentence and "build" in sentence and re.search(r"\d+(\.\d+)? min", sentence):
                assert quoted in sentence, f"{page.name}: {sentence!r} does not quote README's {quoted!r}"
