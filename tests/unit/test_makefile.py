"""`make help` lists every target with its own description, nothing left unexpanded."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_every_phony_target_readably() -> None:
    out = subprocess.run(["make", "-s", "help"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    assert "$(" not in out and "$$" not in out, out
    listed = re.findall(r"^  make (\S+) ", out, flags=re.M)
    phony = re.search(r"^\.PHONY: (.+)$", (REPO_ROOT / "Makefile").read_text(), flags=re.M)
    assert phony is not None
    assert sorted(listed) == sorted(phony[1].split())
