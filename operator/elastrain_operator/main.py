"""Entry point ``elastrain-operator``: runs kopf with elastrain's handlers (a later issue fills it)."""

from __future__ import annotations

import sys


def main() -> None:
    print("elastrain-operator: the operator core is not built yet (see the operator-core issue)", file=sys.stderr)
    sys.exit(2)
