"""Packaging promises: an operator install pulls neither torch nor ray."""

from __future__ import annotations

import re
from importlib import metadata

import pytest
from packaging.requirements import Requirement

HEAVY = {"torch", "ray", "torchft"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(dist: str, extras: set[str]) -> set[str]:
    """Names of every installed distribution that ``dist[extras]`` needs, transitively."""
    seen: set[str] = set()
    visited: set[tuple[str, frozenset[str]]] = set()
    stack: list[tuple[str, set[str]]] = [(dist, extras)]
    while stack:
        name, wanted = stack.pop()
        if (_normalise(name), frozenset(wanted)) in visited:
            continue
        visited.add((_normalise(name), frozenset(wanted)))
        for raw in metadata.requires(name) or []:
            req = Requirement(raw)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is not None and not any(req.marker.evaluate(env) for env in envs):
                continue
            key = _normalise(req.name)
            if key != _normalise(dist):  # a self-reference such as elastrain[operator,trainer]
                seen.add(key)
            stack.append((req.name, set(req.extras)))
    return seen


def test_operator_extra_pulls_no_torch_or_ray() -> None:
    closure = _closure("elastrain", {"operator"})
    assert {"kopf", "kubernetes", "pydantic"} <= closure
    assert not closure & HEAVY, f"elastrain[operator] pulls {sorted(closure & HEAVY)}"


@pytest.mark.parametrize("extra", ["trainer", "dev"])
def test_trainer_and_dev_extras_do_pull_the_training_stack(extra: str) -> None:
    # The same walk finds torch and ray where they belong, so the check above can fail.
    assert _closure("elastrain", {extra}) >= HEAVY
