"""Prints the requirements of elastrain's core and one extra, read from pyproject.toml, one per line.

Runs in an image's dependency stage (`python3 requirements.py pyproject.toml trainer > requirements.txt`) so
the heavy dependencies install in a layer that depends on pyproject.toml only: a source change reuses it.
Standard library only (the bare base's python3 runs it). References to elastrain's own extras
(`elastrain[operator]`) are expanded.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: dict[str, object], extra: str) -> list[str]:
    """The project's dependencies plus those of `extra`, self-references expanded, in first-seen order."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    name = str(project["name"]).lower()
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    if extra not in extras:
        known = ", ".join(repr(name) for name in sorted(extras))
        raise SystemExit(
            f"pyproject.toml: [project.optional-dependencies] has no extra '{extra}' (known: {known}); pass one of them"
        )
    found: list[str] = []
    pending = [*project.get("dependencies", []), *extras[extra]]
    seen_extras = {extra}
    while pending:
        requirement = pending.pop(0)
        own = re.fullmatch(rf"\s*{re.escape(name)}\s*\[([^\]]+)\]\s*", requirement, flags=re.IGNORECASE)
        if own:
            for sub in (part.strip() for part in own[1].split(",")):
                if sub not in seen_extras:
                    seen_extras.add(sub)
                    pending.extend(extras[sub])
        elif requirement not in found:
            found.append(requirement)
    return found


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: requirements.py PYPROJECT EXTRA")
    pyproject = tomllib.loads(Path(argv[0]).read_text(encoding="utf-8"))
    print("\n".join(requirements(pyproject, argv[1])))


if __name__ == "__main__":
    main(sys.argv[1:])
