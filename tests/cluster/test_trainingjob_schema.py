"""The real API server enforces the TrainingJob schema generated from the models.

Invalid manifests (tests/data/trainingjob_invalid.yaml, shared with the parser's unit test) are
rejected at `kubectl apply` with a message naming the field; the examples are accepted; objects
round-trip through the API server unchanged, with the server's defaults equal to the models'.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from elastrain_dev.cluster import LocalCluster
from elastrain_operator.api import (
    API_VERSION,
    KIND,
    CheckpointSpec,
    Condition,
    ElasticPolicy,
    JobPhase,
    ObjectMeta,
    ProgressStatus,
    ResizeRecord,
    TrainingJob,
    TrainingJobSpec,
    TrainingJobStatus,
    WorkersStatus,
    parse_trainingjob,
)
from elastrain_operator.api.status import ExportRequestState, ExportRequestStatus, ExportStatus
from elastrain_trainer.config import ModelConfig, TrainerConfig

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("trainingjob_crd")]

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


def apply(cluster: LocalCluster, namespace: str, manifest: dict[str, Any], *extra: str, check: bool = True) -> Any:
    return cluster.kubectl("apply", "-n", namespace, *extra, "-f", "-", input=json.dumps(manifest), check=check)


def get_job(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cluster.kubectl("get", "-n", namespace, "tj", name, "-o", "json").stdout)
    return result


def manifest_of(job: TrainingJob, *, only_set: bool) -> dict[str, Any]:
    """The manifest a user would write: only the fields set (only_set) or every field."""
    body = job.model_dump(mode="json", exclude_unset=only_set, exclude_none=True, exclude={"status"})
    return {**body, "apiVersion": API_VERSION, "kind": KIND}


@pytest.mark.parametrize("case", CASES["cases"], ids=[case["id"] for case in CASES["cases"]])
def test_invalid_manifest_is_rejected_naming_the_field(
    cluster: LocalCluster, namespace: str, case: dict[str, Any]
) -> None:
    manifest = merge_patch(CASES["base"], case["patch"])
    result = apply(cluster, namespace, manifest, check=False)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    assert case["field"] in result.stderr
    assert case.get("server", "") in result.stderr


def test_base_manifest_is_accepted(cluster: LocalCluster, namespace: str) -> None:
    """Otherwise the invalid cases could be rejected for the base's reason, not their own."""
    apply(cluster, namespace, CASES["base"])


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_is_accepted_and_reads_back_as_written(cluster: LocalCluster, namespace: str, path: Path) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(path))
    written = parse_trainingjob(yaml.safe_load(path.read_text()))
    stored = parse_trainingjob(get_job(cluster, namespace, str(written.metadata.name)))
    assert stored.spec == written.spec


def test_round_trip_with_server_defaults(cluster: LocalCluster, namespace: str) -> None:
    """A manifest with few fields comes back with every default filled in, equal to the model's."""
    job = TrainingJob(
        metadata=ObjectMeta(name="defaults"),
        spec=TrainingJobSpec(
            image="example.com/trainer:1",
            replicas=3,
            elastic=ElasticPolicy(min_replicas=2, max_replicas=4),
            trainer=TrainerConfig(steps=40, model=ModelConfig(num_layers=3)),
            checkpoint=CheckpointSpec(uri="file:///shared/defaults", interval_steps=20),
        ),
    )
    sent = manifest_of(job, only_set=True)
    assert "imagePullPolicy" not in sent["spec"] and "optimizer" not in sent["spec"]["trainer"]
    apply(cluster, namespace, sent)

    stored = get_job(cluster, namespace, "defaults")
    assert stored["spec"] == job.spec.model_dump(mode="json", exclude_none=True)
    parsed = parse_trainingjob(stored)
    assert parsed.spec == job.spec
    assert parsed.metadata.name == "defaults" and parsed.metadata.uid


def test_round_trip_of_every_field(cluster: LocalCluster, namespace: str) -> None:
    job = parse_trainingjob(yaml.safe_load((REPO_ROOT / "examples/gpu-hsdp.yaml").read_text()))
    apply(cluster, namespace, manifest_of(job, only_set=False))
    stored = get_job(cluster, namespace, str(job.metadata.name))
    assert stored["spec"] == job.spec.model_dump(mode="json", exclude_none=True)
    assert parse_trainingjob(stored).spec == job.spec


def test_status_round_trip_and_printer_columns(cluster: LocalCluster, namespace: str) -> None:
    apply(cluster, namespace, merge_patch(CASES["base"], {"metadata": {"name": "status"}}))
    now = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC)
    status = TrainingJobStatus(
        phase=JobPhase.RUNNING,
        conditions=[
            Condition(type="Running", status="True", reason="WorkersReady", last_transition_time=now),
            Condition(type="ScaleUpBlocked", status="True", reason="Unschedulable", message="0/4 nodes"),
        ],
        workers=WorkersStatus(desired=2, ready=1, min=2, max=2, world_size=2),
        progress=ProgressStatus(step=17, total_steps=50, loss=2.5, tokens_per_second=1234.5, last_checkpoint_step=10),
        export=ExportStatus(path="/export/final", step=50),
        export_request=ExportRequestStatus(
            request_id="before-lr-drop", state=ExportRequestState.EXPORTED, path="/export/step-17", step=17
        ),
        resizes=[ResizeRecord(time=now, from_=2, to=1, reason="NodeLost")],
        start_time=now,
        selector="elastrain.dev/job=status,elastrain.dev/role=worker",
    )
    body = {"status": status.model_dump(mode="json", exclude_none=True)}
    cluster.kubectl(
        "patch", "-n", namespace, "tj", "status", "--subresource=status", "--type=merge", "-p", json.dumps(body)
    )
    assert parse_trainingjob(get_job(cluster, namespace, "status")).status == status

    table = cluster.kubectl("get", "-n", namespace, "tj", "status").stdout.split("\n")
    assert table[0].split() == ["NAME", "PHASE", "READY", "DESIRED", "STEP", "LOSS", "AGE"]
    assert table[1].split()[:6] == ["status", "Running", "1", "2", "17", "2.5"]
    wide = cluster.kubectl("get", "-n", namespace, "tj", "status", "-o", "wide").stdout.split("\n")
    assert wide[0].split() == [
        *["NAME", "PHASE", "READY", "DESIRED", "STEP", "LOSS"],
        *["WORLD", "TOKENS/S", "CHECKPOINT", "AGE"],
    ]
    assert wide[1].split()[6:9] == ["2", "1234.5", "10"]


def test_status_is_written_only_through_its_subresource(cluster: LocalCluster, namespace: str) -> None:
    apply(
        cluster,
        namespace,
        merge_patch(CASES["base"], {"metadata": {"name": "nostatus"}, "status": {"phase": "Failed"}}),
    )
    assert "status" not in get_job(cluster, namespace, "nostatus")


def test_scale_subresource_is_bound_by_elastic(cluster: LocalCluster, namespace: str) -> None:
    manifest = merge_patch(
        CASES["base"], {"metadata": {"name": "scaled"}, "spec": {"elastic": {"minReplicas": 1, "maxReplicas": 4}}}
    )
    apply(cluster, namespace, manifest)
    cluster.kubectl("scale", "-n", namespace, "tj", "scaled", "--replicas=4")
    assert get_job(cluster, namespace, "scaled")["spec"]["replicas"] == 4

    refused = cluster.kubectl("scale", "-n", namespace, "tj", "scaled", "--replicas=5", check=False)
    assert refused.returncode != 0
    assert "replicas must lie within [elastic.minReplicas, elastic.maxReplicas]" in refused.stderr
    assert get_job(cluster, namespace, "scaled")["spec"]["replicas"] == 4

    body = {"status": {"workers": {"ready": 3}, "selector": "elastrain.dev/job=scaled"}}
    cluster.kubectl(
        "patch", "-n", namespace, "tj", "scaled", "--subresource=status", "--type=merge", "-p", json.dumps(body)
    )
    scale = json.loads(
        cluster.kubectl(
            "get", "--raw", f"/apis/elastrain.dev/v1alpha1/namespaces/{namespace}/trainingjobs/scaled/scale"
        ).stdout
    )
    assert scale["spec"]["replicas"] == 4
    assert scale["status"] == {"replicas": 3, "selector": "elastrain.dev/job=scaled"}


def test_model_is_immutable_but_steps_are_not(cluster: LocalCluster, namespace: str) -> None:
    manifest = merge_patch(CASES["base"], {"metadata": {"name": "immutable"}})
    apply(cluster, namespace, manifest)
    changed_model = merge_patch(manifest, {"spec": {"trainer": {"model": {"dim": 128}}}})
    refused = apply(cluster, namespace, changed_model, check=False)
    assert refused.returncode != 0
    assert "spec.trainer.model" in refused.stderr and "immutable" in refused.stderr
    apply(cluster, namespace, merge_patch(manifest, {"spec": {"trainer": {"steps": 80}}}))
    assert get_job(cluster, namespace, "immutable")["spec"]["trainer"]["steps"] == 80


def test_unknown_fields_are_pruned_when_validation_is_off(cluster: LocalCluster, namespace: str) -> None:
    """The documented policy: rejected under kubectl's default (strict), silently dropped without it."""
    manifest = merge_patch(
        CASES["base"], {"metadata": {"name": "pruned"}, "spec": {"replica": 3, "trainer": {"foo": 1}}}
    )
    warned = apply(cluster, namespace, manifest, "--validate=warn")
    assert 'unknown field "spec.replica"' in warned.stderr
    stored = get_job(cluster, namespace, "pruned")["spec"]
    assert "replica" not in stored and "foo" not in stored["trainer"]
    apply(cluster, namespace, merge_patch(manifest, {"metadata": {"name": "pruned2"}}), "--validate=false")
    assert "replica" not in get_job(cluster, namespace, "pruned2")["spec"]


def test_explicit_null_means_unset(cluster: LocalCluster, namespace: str) -> None:
    manifest = merge_patch(CASES["base"], {"metadata": {"name": "nulls"}})
    manifest["spec"]["elastic"] = None
    manifest["spec"]["checkpoint"] = None
    apply(cluster, namespace, manifest)
    stored = get_job(cluster, namespace, "nulls")["spec"]
    assert "elastic" not in stored and "checkpoint" not in stored


def test_explain_shows_the_model_descriptions(cluster: LocalCluster) -> None:
    out = cluster.kubectl("explain", "trainingjob.spec.elastic").stdout
    assert "Elastic bounds" in out
    assert "minReplicas" in out and "Fewest worker pods the job trains with" in out
    assert "<integer> -required-" in out
    trainer = cluster.kubectl("explain", "tj.spec.trainer.optimizer.name").stdout
    assert "adamw" in trainer and "rmsprop" in trainer
