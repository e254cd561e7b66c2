"""Owner references: deleting a TrainingJob deletes everything it created (garbage collector)."""

from __future__ import annotations

from typing import Any

from elastrain_operator.api import API_VERSION, KIND


def owner_reference(*, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
