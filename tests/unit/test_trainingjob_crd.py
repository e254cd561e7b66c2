"""The generated CRD is structural and says what the API server needs to enforce the API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from elastrain_operator.api import (
    API_VERSION,
    CRD_NAME,
    GROUP,
    KIND,
    PLURAL,
    RunPolicy,
    TrainingJobSpec,
    TrainingJobStatus,
)
from elastrain_operator.api.crd import build_crd, build_openapi_schema
from elastrain_operator.api.schema import SchemaConversionError, to_structural
from elastrain_trainer.config import TrainerConfig

pytestmark = pytest.mark.unit

SCHEMA = build_openapi_schema()
FORBIDDEN_KEYS = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "title", "const", "nullable"}


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


NODES = list(walk(SCHEMA))


def test_names_and_subresources() -> None:
    crd = build_crd()
    assert crd["metadata"]["name"] == CRD_NAME == f"{PLURAL}.{GROUP}"
    assert f"{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}" == API_VERSION
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"], names["categories"]) == (
        KIND,
        "trainingjobs",
        ["tj"],
        ["elastrain"],
    )
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.workers.ready",
            "labelSelectorPath": ".status.selector",
        },
    }
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Ready"] == ".status.workers.ready"
    assert columns["Desired"] == ".spec.replicas"
    assert columns["Step"] == ".status.progress.step"
    assert columns["Loss"] == ".status.progress.loss"
    assert columns["Age"] == ".metadata.creationTimestamp"


@pytest.mark.parametrize(("path", "node"), NODES, ids=[path or "<root>" for path, _ in NODES])
def test_every_node_is_structural(path: str, node: dict[str, Any]) -> None:
    assert not FORBIDDEN_KEYS & node.keys(), f"{path} uses {FORBIDDEN_KEYS & node.keys()}"
    assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
    if "exclusiveMinimum" in node:
        assert node["exclusiveMinimum"] is True and "minimum" in node
    if node.get("x-kubernetes-list-type") == "map":
        keys = node["x-kubernetes-list-map-keys"]
        assert set(keys) <= set(node["items"].get("required", [])), f"{path}: list-map keys must be required"


def test_every_user_facing_field_has_a_description() -> None:
    undocumented = [
        path
        for path, node in NODES
        if path.startswith((".spec", ".status")) and "description" not in node and not path.endswith(("[]", "{}"))
    ]
    assert not undocumented


def test_cel_rules_that_iterate_are_bounded() -> None:
    """CEL cost limits: every list and map a rule can iterate has maxItems / maxProperties."""
    for path, node in NODES:
        if node.get("type") == "array" and path.startswith(".spec"):
            assert "maxItems" in node, f"{path} has no maxItems"


def test_object_defaults_are_the_models_defaults_spelled_out() -> None:
    """Complete, not {}: the API server checks defaults against the CEL rules without nested defaulting."""
    spec = SCHEMA["properties"]["spec"]["properties"]
    assert spec["trainer"]["default"] == TrainerConfig().model_dump(mode="json", exclude_none=True)
    assert spec["trainer"]["properties"]["optimizer"]["default"]["name"] == "adamw"
    assert spec["runPolicy"]["default"] == RunPolicy().model_dump(mode="json", exclude_none=True)
    assert "shardSize" not in spec["trainer"]["default"]["parallelism"], "nulls are dropped from defaults"
    assert "default" not in spec["elastic"], "unset elastic means fixed size, it must not be defaulted"
    assert spec["trainer"]["properties"]["optimizer"]["properties"]["betas"]["default"] == [0.9, 0.95]


def test_cross_field_rules_are_cel_with_field_and_fix() -> None:
    rules = {
        rule["fieldPath"]: rule
        for _, node in NODES
        for rule in node.get("x-kubernetes-validations", [])
        if "fieldPath" in rule
    }
    assert rules[".replicas"]["rule"].startswith("!has(self.elastic)")
    assert ".checkpoint.intervalSteps" in rules
    assert ".trainer.parallelism.shardSize" in rules
    assert ".optimizer.name" in rules  # fp16 without master weights and an adaptive optimizer
    for rule in rules.values():
        assert ";" in rule["message"], f"{rule['message']!r} should say how to fix it after a ';'"


def test_enums_are_closed() -> None:
    spec = SCHEMA["properties"]["spec"]["properties"]
    optimizer = spec["trainer"]["properties"]["optimizer"]["properties"]["name"]
    assert optimizer["enum"] == ["adamw", "adam", "lamb", "sgd", "adagrad", "rmsprop"]
    phase = SCHEMA["properties"]["status"]["properties"]["phase"]
    assert phase["enum"] == ["Pending", "Running", "Rescaling", "Suspended", "Succeeded", "Failed"]


def test_embedded_kubernetes_types_are_preserved_where_free_form() -> None:
    pod = SCHEMA["properties"]["spec"]["properties"]["pod"]["properties"]
    scheduling = SCHEMA["properties"]["spec"]["properties"]["scheduling"]["properties"]
    assert scheduling["affinity"] == {
        "description": scheduling["affinity"]["description"],
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    assert pod["volumes"]["items"]["x-kubernetes-preserve-unknown-fields"] is True
    assert pod["volumes"]["items"]["required"] == ["name"]
    assert pod["resources"]["properties"]["limits"]["additionalProperties"] == {"x-kubernetes-int-or-string": True}
    assert "x-kubernetes-preserve-unknown-fields" not in SCHEMA["properties"]["spec"]


@pytest.mark.parametrize("model", [TrainerConfig, TrainingJobSpec, TrainingJobStatus])
def test_each_model_converts_on_its_own(model: Any) -> None:
    assert to_structural(model.model_json_schema())["type"] == "object"


def test_unstructural_union_is_refused_by_name() -> None:
    schema = {"type": "object", "properties": {"x": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]}}}
    with pytest.raises(SchemaConversionError, match=r"<root>\.x: a union"):
        to_structural(schema)
