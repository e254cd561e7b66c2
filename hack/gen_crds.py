#!/usr/bin/env python3
"""Write the files generated from the TrainingJob models: the CRD, the Helm chart's copy, the API reference.

Usage: python hack/gen_crds.py [--check]

--check writes nothing; it exits 1 and names every stale file (CI runs it; so does a unit test).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT / "operator"), str(REPO_ROOT / "trainer_image")]

from elastrain_operator.api.generated import render_generated_files  # noqa: E402


def main(argv: list[str] | None = None, *, root: Path = REPO_ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is stale; write nothing")
    args = parser.parse_args(argv)
    stale = []
    for relative, content in render_generated_files().items():
        path = root / relative
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == content:
            continue
        stale.append(relative)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            print(f"wrote {relative}")
    if args.check and stale:
        print("stale generated files (run `make crds`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
