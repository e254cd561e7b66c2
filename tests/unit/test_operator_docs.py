"""docs/operator.md names every pod env variable, setting, metric, phase and reason the code has."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from elastrain_operator.api import ConditionType, JobPhase, Reason
from elastrain_operator.settings import OperatorSettings
from elastrain_trainer.config.podenv import PodEnv

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC = (REPO_ROOT / "docs/operator.md").read_text()
SETTINGS_SOURCE = (REPO_ROOT / "operator/elastrain_operator/settings.py").read_text()
METRICS_SOURCE = "".join(
    (REPO_ROOT / "operator/elastrain_operator" / module).read_text()
    for module in ("handlers/metrics.py", "kube/client.py", "kube/informer.py")
)


def table_rows(doc: str) -> set[str]:
    """The first cell of every Markdown table row, without backticks."""
    return {m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", doc, flags=re.MULTILINE)}


@pytest.mark.parametrize("name", [v.value for v in PodEnv])
def test_every_pod_env_variable_has_a_row(name: str) -> None:
    assert name in table_rows(DOC)


def test_every_setting_has_a_row() -> None:
    variables = set(re.findall(r"\bELASTRAIN_[A-Z_]+\b", SETTINGS_SOURCE))
    assert len(variables) == len(dataclasses.fields(OperatorSettings))
    assert variables <= table_rows(DOC)


def test_every_metric_has_a_row() -> None:
    metrics = set(re.findall(r'"(elastrain_[a-z_]+)"', METRICS_SOURCE))
    assert len(metrics) == 15
    assert metrics <= table_rows(DOC)


@pytest.mark.parametrize("word", [*(p.value for p in JobPhase), *(c.value for c in ConditionType)])
def test_every_phase_and_condition_is_explained(word: str) -> None:
    assert f"`{word}`" in DOC


@pytest.mark.parametrize("reason", [r.value for r in Reason])
def test_every_emitted_reason_is_named(reason: str) -> None:
    assert f"`{reason}`" in DOC


@pytest.mark.parametrize(
    ("heading", "words"),
    [
        ("## Node loss and replacements", ("`elastrain.dev/attempt`", "`NAME-worker-I-rN`", "belowMinGraceSeconds")),
        (
            "## How the trainer learns the size it may use",
            ("Ray node", "replica group", "quorum", "`ELASTRAIN_MIN_WORKERS`", "`ELASTRAIN_MAX_WORKERS`"),
        ),
    ],
)
def test_elasticity_is_documented(heading: str, words: tuple[str, ...]) -> None:
    assert heading in DOC
    section = DOC.split(heading, 1)[1].split("\n## ", 1)[0]
    for word in words:
        assert word in section, word
