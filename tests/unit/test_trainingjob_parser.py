"""The operator-side parser: every invalid manifest the API server rejects is rejected here too,
with one message naming the field, the value and the fix; every example parses."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from elastrain_operator.api import InvalidTrainingJobError, Reason, TrainingJob, parse_trainingjob

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
CASES = yaml.safe_load((REPO_ROOT / "tests/data/trainingjob_invalid.yaml").read_text())
EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch (RFC 7386)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def test_base_manifest_is_valid() -> None:
    """Otherwise every invalid case would fail for the base's reason, not its own."""
    job = parse_trainingjob(CASES["base"])
    assert job.spec.replicas == 2


@pytest.mark.parametrize("case", CASES["cases"], ids=[case["id"] for case in CASES["cases"]])
def test_invalid_manifest_is_rejected_naming_the_field(case: dict[str, Any]) -> None:
    manifest = merge_patch(CASES["base"], case["patch"])
    with pytest.raises(InvalidTrainingJobError) as raised:
        parse_trainingjob(manifest)
    message = str(raised.value)
    assert case["field"] in message
    assert case.get("parser", "") in message
    assert message.startswith(f"TrainingJob {manifest['metadata']['name']} is invalid: ")
    assert raised.value.reason == Reason.INVALID_SPEC


def test_there_are_at_least_25_invalid_cases() -> None:
    assert len(CASES["cases"]) >= 25
    assert len({case["id"] for case in CASES["cases"]}) == len(CASES["cases"])


def test_error_names_field_value_and_fix() -> None:
    manifest = merge_patch(CASES["base"], {"spec": {"replicas": 7, "elastic": {"minReplicas": 1, "maxReplicas": 4}}})
    with pytest.raises(InvalidTrainingJobError) as raised:
        parse_trainingjob({**manifest, "metadata": {"name": "big", "namespace": "team-a"}})
    error = raised.value
    assert (error.field, error.value) == ("spec.replicas", 7)
    assert str(error) == (
        "TrainingJob team-a/big is invalid: spec.replicas: replicas must lie within "
        "[elastic.minReplicas, elastic.maxReplicas]; set replicas inside the range or widen elastic "
        "(got replicas=7, elastic.minReplicas=1, elastic.maxReplicas=4)"
    )


def test_every_problem_is_listed_in_one_message() -> None:
    manifest = merge_patch(CASES["base"], {"spec": {"replicas": "two", "imagePullPolicy": "Sometimes", "replica": 3}})
    with pytest.raises(InvalidTrainingJobError) as raised:
        parse_trainingjob(manifest)
    message = str(raised.value)
    assert "spec.replicas: Input should be a valid integer" in message
    assert "(got 'two')" in message
    assert "spec.imagePullPolicy: Input should be 'Always', 'IfNotPresent' or 'Never' (got 'Sometimes')" in message
    assert "spec.replica: unknown field; remove it or check its spelling" in message
    assert len(raised.value.problems) == 3


def test_snake_case_keys_are_unknown_fields() -> None:
    """Manifests are camelCase; the Python names are not accepted in a manifest."""
    manifest = merge_patch(CASES["base"], {"spec": {"accelerators_per_worker": 2}})
    with pytest.raises(InvalidTrainingJobError, match=r"spec\.accelerators_per_worker: unknown field"):
        parse_trainingjob(manifest)


def test_server_metadata_and_status_are_accepted() -> None:
    stored = merge_patch(
        CASES["base"],
        {
            "metadata": {
                "namespace": "ns",
                "uid": "0b3d",
                "generation": 3,
                "resourceVersion": "42",
                "creationTimestamp": "2025-01-01T00:00:00Z",
                "managedFields": [{"manager": "kubectl"}],
            },
            "status": {
                "phase": "Running",
                "workers": {"desired": 2, "ready": 1, "worldSize": 2},
                "resizes": [{"time": "2025-01-01T00:01:00Z", "from": 2, "to": 1, "reason": "NodeLost"}],
            },
        },
    )
    job = parse_trainingjob(stored)
    assert job.metadata.generation == 3
    assert job.status is not None and job.status.workers is not None
    assert job.status.workers.world_size == 2
    assert job.status.resizes is not None and job.status.resizes[0].from_ == 2


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_examples_parse(path: Path) -> None:
    job = parse_trainingjob(yaml.safe_load(path.read_text()))
    assert isinstance(job, TrainingJob)
    assert job.metadata.name == path.stem or job.metadata.name


def test_there_are_the_three_promised_examples() -> None:
    assert {"cpu-tiny.yaml", "gpu-hsdp.yaml", "elastic-compression.yaml"} <= {path.name for path in EXAMPLES}


def test_round_trip_through_the_serialized_form() -> None:
    job = parse_trainingjob(yaml.safe_load((REPO_ROOT / "examples/gpu-hsdp.yaml").read_text()))
    dumped = job.model_dump(mode="json", exclude_none=True)
    assert dumped["spec"]["checkpoint"]["async"] is True
    assert dumped["spec"]["trainer"]["overlap"]["bucketSizeMB"] == 50
    assert parse_trainingjob(dumped) == job
