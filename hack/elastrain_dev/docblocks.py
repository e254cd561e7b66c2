"""Tables in docs/ that are generated, not written: the troubleshooting reasons (from the ``Reason``
enum), the operator's settings (from ``OperatorSettings``) and the permissions (from the chart's
rendered roles). ``hack/gen_docs.py`` writes them (``make crds``); a unit test fails when one is stale.

A generated table sits between two markers in its page, so the prose around it stays hand-written::

    <!-- BEGIN GENERATED reasons: hack/gen_docs.py -->
    ...
    <!-- END GENERATED reasons -->
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from elastrain_dev.cluster import REPO_ROOT
from elastrain_operator.api.reasons import render_reason_table
from elastrain_operator.settings import setting_variables

CHART = REPO_ROOT / "helm" / "elastrain"
#: (apiGroup, resource) -> why the operator needs it; a rendered rule without an entry fails the generator.
PERMISSION_USES: dict[tuple[str, str], str] = {
    ("elastrain.dev", "trainingjobs"): "kopf watches jobs (event handlers only: it writes nothing to a job); the "
    "operator's cache lists and watches them; TTL deletes finished jobs",
    ("elastrain.dev", "trainingjobs/status"): "the one status write per reconcile",
    ("", "pods"): "a job's head and workers (the cache lists and watches them)",
    ("", "services"): "a job's headless head Service (the cache lists and watches them)",
    ("", "secrets"): "the per-job Secret `NAME-ray-auth` with the job's Ray token: created once, never read back",
    ("networking.k8s.io", "networkpolicies"): "the per-job NetworkPolicy admitting only the job's own pods to Ray's "
    "and torchft's ports (the cache lists and watches them)",
    ("policy", "poddisruptionbudgets"): "the per-job PodDisruptionBudget `NAME-workers`: evictions take workers "
    "down to `elastic.minReplicas` only; created once, never read back",
    ("", "events"): "the job's story in `kubectl describe tj`",
    ("", "nodes"): "node-loss detection: the cache lists and watches nodes",
    ("apiextensions.k8s.io", "customresourcedefinitions"): "kopf notices the CRD being upgraded",
    ("", "namespaces"): "kopf follows the watched namespaces",
    ("coordination.k8s.io", "leases"): "leader election",
}


class StaleMarkersError(ValueError):
    """A page lacks the markers of a generated block."""


def begin_marker(name: str) -> str:
    return f"<!-- BEGIN GENERATED {name}: hack/gen_docs.py -->"


def end_marker(name: str) -> str:
    return f"<!-- END GENERATED {name} -->"


def replace_block(text: str, name: str, content: str) -> str:
    """``text`` with the block ``name`` replaced by ``content``; raises when its markers are missing."""
    pattern = re.compile(re.escape(begin_marker(name)) + r"\n.*?" + re.escape(end_marker(name)), flags=re.S)
    if not pattern.search(text):
        raise StaleMarkersError(f"no {begin_marker(name)} ... {end_marker(name)} block; add the two markers")
    return pattern.sub(lambda _: f"{begin_marker(name)}\n{content}{end_marker(name)}", text, count=1)


def render_settings_table() -> str:
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{name}` | `{default}` | {meaning} |" for name, default, meaning in setting_variables()]
    return "\n".join(lines) + "\n"


def helm_template(helm: Path, *args: str, chart: Path = CHART) -> list[dict[str, Any]]:
    """The chart's objects as `helm template` renders them (release "elastrain" in elastrain-system)."""
    out = subprocess.run(
        [str(helm), "template", "elastrain", str(chart), "--namespace", "elastrain-system", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


Grant = tuple[str, str, str, str]  # (scope, apiGroup, resource, verb); scope "cluster", "namespaced" or "release"


def chart_grants(objects: Iterable[dict[str, Any]]) -> set[Grant]:
    """Every permission the rendered ClusterRoles and Roles give, with where it applies."""
    grants: set[Grant] = set()
    for obj in objects:
        if obj["kind"] not in ("ClusterRole", "Role"):
            continue
        scope = "cluster" if obj["kind"] == "ClusterRole" else "release"
        for rule in obj["rules"]:
            names = rule.get("resourceNames")
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        shown = f"{verb} ({', '.join(names)} only)" if names else verb
                        grants.add((scope, group, resource, shown))
    return grants


def render_permissions_table(objects: Iterable[dict[str, Any]], namespaced: Iterable[dict[str, Any]]) -> str:
    """The permissions table: the default render's roles, plus what only ``rbac.namespaced`` adds.

    ``namespaced`` is the render with ``rbac.namespaced`` (and watched namespaces): what it leaves in the
    ClusterRole is cluster-scoped, the rest moves to a Role per watched namespace.
    """
    default = chart_grants(objects)
    namespaced = list(namespaced)
    extra = {g for g in chart_grants(namespaced) if g[0] == "cluster"} - default
    stays_cluster_wide = {(g[1], g[2]) for g in chart_grants(namespaced) if g[0] == "cluster"}
    rows: dict[tuple[str, str, str], list[str]] = {}
    order: list[tuple[str, str, str]] = []
    for scope, group, resource, verb in sorted(default | extra, key=_grant_order):
        key = (scope if (scope, group, resource, verb) not in extra else "namespaced-only", group, resource)
        if key not in rows:
            rows[key] = []
            order.append(key)
        rows[key].append(verb)
    lines = ["| resource | verbs | where | used by |", "| --- | --- | --- | --- |"]
    where = {
        "cluster": "ClusterRole; with `rbac.namespaced`, a Role in each watched namespace",
        "cluster-scoped": "ClusterRole",
        "release": "Role in the release namespace",
        "namespaced-only": "ClusterRole, only with `rbac.namespaced`",
    }
    for scope, group, resource in order:
        try:
            use = PERMISSION_USES[(group, resource)]
        except KeyError:
            raise ValueError(
                f"the chart grants {resource} ({group or 'core'}) but docblocks.PERMISSION_USES does not say why; "
                "add an entry or drop the rule"
            ) from None
        base, _, sub = resource.partition("/")
        name = f"`{base}.{group}{'/' + sub if sub else ''}`" if group else f"`{resource}`"
        shown = "cluster-scoped" if scope == "cluster" and (group, resource) in stays_cluster_wide else scope
        lines.append(f"| {name} | {', '.join(rows[(scope, group, resource)])} | {where[shown]} | {use} |")
    return "\n".join(lines) + "\n"


_VERB_ORDER = ["get", "list", "watch", "create", "update", "patch", "delete"]
_RESOURCE_ORDER = [g + r for g, r in PERMISSION_USES]


def _grant_order(grant: Grant) -> tuple[int, int]:
    _scope, group, resource, verb = grant
    key = group + resource
    position = _RESOURCE_ORDER.index(key) if key in _RESOURCE_ORDER else len(_RESOURCE_ORDER)
    bare = verb.split(" ", 1)[0]
    return position, _VERB_ORDER.index(bare) if bare in _VERB_ORDER else len(_VERB_ORDER)


def render_blocks(helm: Callable[[], Path]) -> dict[str, dict[str, Callable[[], str]]]:
    """{page relative to the repo: {block name: a function rendering its content}} for every generated block.

    ``helm`` finds the helm binary; only the permissions table calls it.
    """
    return {
        "docs/operations.md": {
            "reasons": render_reason_table,
            "permissions": lambda: render_permissions_table(
                helm_template(helm()),
                helm_template(helm(), "--set", "rbac.namespaced=true", "--set", "watchNamespaces={team-a}"),
            ),
        },
        "docs/operator.md": {"settings": render_settings_table},
    }


def render_pages(helm: Callable[[], Path], root: Path = REPO_ROOT) -> dict[str, str]:
    """{page: its text with every generated block brought up to date}."""
    pages = {}
    for page, blocks in render_blocks(helm).items():
        text = (root / page).read_text(encoding="utf-8")
        for name, render in blocks.items():
            text = replace_block(text, name, render())
        pages[page] = text
    return pages
