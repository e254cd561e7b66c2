#!/usr/bin/env python3
"""Write the generated tables of docs/: condition and Event reasons, operator settings, permissions.

Usage: python hack/gen_docs.py [--check]

The permissions table is rendered from the chart's ClusterRole and Roles by the real helm binary
(built by hack/build-controlplane.sh). --check writes nothing; it exits 1 and names every stale page.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT / "operator"), str(REPO_ROOT / "trainer_image"), str(REPO_ROOT / "hack")]

from elastrain_dev.cluster import build_binaries  # noqa: E402
from elastrain_dev.docblocks import render_pages  # noqa: E402


def main(argv: list[str] | None = None, *, root: Path = REPO_ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated table is stale; write nothing")
    args = parser.parse_args(argv)
    stale = []
    for relative, content in render_pages(lambda: build_binaries() / "helm", root).items():
        path = root / relative
        if path.read_text(encoding="utf-8") == content:
            continue
        stale.append(relative)
        if not args.check:
            path.write_text(content, encoding="utf-8")
            print(f"wrote {relative}")
    if args.check and stale:
        print("stale generated tables (run `make crds`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
