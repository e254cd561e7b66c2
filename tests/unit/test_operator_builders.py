"""The pure manifest builders: pods and the head Service as functions of a TrainingJob, no cluster."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from elastrain_operator.api import API_VERSION, KIND, Label, Role, TrainingJob, parse_trainingjob
from elastrain_operator.builders.disruption import build_disruption_budget
from elastrain_operator.builders.env import CHECKPOINT_MOUNT_PATH, EXPORT_MOUNT_PATH, build_env
from elastrain_operator.builders.names import (
    head_address,
    head_pod_name,
    pod_labels,
    worker_pod_name,
    worker_selector,
)
from elastrain_operator.builders.pods import (
    GPU_PRESENT_LABEL,
    GPU_RESOURCE,
    HEAD_COMMAND,
    WORKER_COMMAND,
    build_head_pod,
    build_worker_pod,
)
from elastrain_operator.builders.secret import build_ray_auth_secret
from elastrain_operator.builders.service import build_head_service
from elastrain_trainer.config.podenv import (
    LIGHTHOUSE_PORT,
    PROGRESS_PORT,
    RAY_PORT,
    TERMINATION_LOG,
    PodEnv,
    read_pod_env,
)

pytestmark = pytest.mark.unit

#: The conftest's ``make_job`` fixture (fixtures, not imports: tests/unit is not a package).
MakeJob = Callable[..., Any]
JOB_NAME, NAMESPACE, UID = "demo", "ml", "3f1c9a52-0000-4000-8000-000000000001"


def build(job: TrainingJob, role: Role, index: int = 0) -> dict[str, Any]:
    return build_head_pod(job) if role is Role.HEAD else build_worker_pod(job, index)


def container(pod: dict[str, Any]) -> dict[str, Any]:
    [only] = pod["spec"]["containers"]
    assert only["name"] == "trainer"
    result: dict[str, Any] = only
    return result


def literal_env(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(pod)["env"] if "value" in e}


# -- metadata ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "index", "name"),
    [(Role.HEAD, 0, "demo-head"), (Role.WORKER, 0, "demo-worker-0"), (Role.WORKER, 7, "demo-worker-7")],
)
def test_pod_metadata_names_labels_and_owner(make_job: MakeJob, role: Role, index: int, name: str) -> None:
    job = make_job(pod={"labels": {"team": "nlp", "tier": "x"}, "annotations": {"note": "hi"}}).obj()
    meta = build(job, role, index)["metadata"]
    assert meta["name"] == name
    assert meta["namespace"] == NAMESPACE
    assert meta["labels"] == {
        "team": "nlp",
        "tier": "x",
        Label.JOB: JOB_NAME,
        Label.ROLE: role.value,
        Label.INDEX: str(index),
        Label.ATTEMPT: "0",
    }
    assert meta["annotations"] == {"note": "hi"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": JOB_NAME,
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


@pytest.mark.parametrize(
    ("role", "index", "attempt", "name"),
    [
        (Role.HEAD, 0, 1, "demo-head-r1"),
        (Role.HEAD, 0, 12, "demo-head-r12"),
        (Role.WORKER, 0, 1, "demo-worker-0-r1"),
        (Role.WORKER, 7, 3, "demo-worker-7-r3"),
    ],
)
def test_replacement_pods_get_a_name_of_their_own_and_their_attempt_label(
    make_job: MakeJob, role: Role, index: int, attempt: int, name: str
) -> None:
    job = make_job().obj()
    pod = build_head_pod(job, attempt) if role is Role.HEAD else build_worker_pod(job, index, attempt)
    assert pod["metadata"]["name"] == name
    assert pod["metadata"]["labels"] == {
        Label.JOB: JOB_NAME,
        Label.ROLE: role.value,
        Label.INDEX: str(index),
        Label.ATTEMPT: str(attempt),
    }
    # The pod knows its own name through the downward API, not a literal that could go stale.
    assert {"name": "ELASTRAIN_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in container(pod)[
        "env"
    ]


@pytest.mark.parametrize(
    ("job", "index", "attempt", "want"),
    [
        ("demo", 0, 0, ("demo-head", "demo-worker-0")),
        ("demo", 3, 0, ("demo-head", "demo-worker-3")),
        ("demo", 3, 1, ("demo-head-r1", "demo-worker-3-r1")),
        ("x", 10, 25, ("x-head-r25", "x-worker-10-r25")),
    ],
)
def test_pod_names(job: str, index: int, attempt: int, want: tuple[str, str]) -> None:
    assert (head_pod_name(job, attempt), worker_pod_name(job, index, attempt)) == want
    assert pod_labels(job, Role.WORKER, index, attempt)[Label.ATTEMPT] == str(attempt)


def test_replacements_keep_the_workers_index_in_their_environment(make_job: MakeJob) -> None:
    first, replacement = build_worker_pod(make_job().obj(), 4), build_worker_pod(make_job().obj(), 4, 2)
    assert literal_env(replacement) == literal_env(first)
    assert literal_env(replacement)["ELASTRAIN_WORKER_INDEX"] == "4"


def test_owner_reference_carries_the_jobs_own_uid(make_job: MakeJob) -> None:
    job = make_job(uid="another-uid").obj()
    for obj in (
        build_head_pod(job),
        build_worker_pod(job, 1),
        build_head_service(job="demo", namespace="ml", uid="u2"),
    ):
        [ref] = obj["metadata"]["ownerReferences"]
        assert ref["uid"] == ("u2" if obj["kind"] == "Service" else "another-uid")


def test_pods_without_overrides_have_no_annotations(make_job: MakeJob) -> None:
    assert "annotations" not in build_worker_pod(make_job().obj(), 0)["metadata"]


# -- resources --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceCase:
    id: str
    setters: dict[str, Any]
    want: dict[str, Any]


RESOURCE_CASES = [
    ResourceCase(
        "gpu-requests-and-limits",
        {"accelerators": 8},
        {"requests": {GPU_RESOURCE: "8"}, "limits": {GPU_RESOURCE: "8"}},
    ),
    ResourceCase("cpu-requests-processes-as-cores", {"device": "cpu", "accelerators": 4}, {"requests": {"cpu": "4"}}),
    ResourceCase(
        "gpu-with-user-resources-merged",
        {
            "accelerators": 2,
            "pod": {"resources": {"requests": {"cpu": "16", "memory": "64Gi"}, "limits": {"memory": "80Gi"}}},
        },
        {
            "requests": {GPU_RESOURCE: "2", "cpu": "16", "memory": "64Gi"},
            "limits": {GPU_RESOURCE: "2", "memory": "80Gi"},
        },
    ),
    ResourceCase(
        "cpu-operators-cpu-request-wins-over-the-users",
        {"device": "cpu", "accelerators": 2, "pod": {"resources": {"requests": {"cpu": "6"}, "limits": {"cpu": 8}}}},
        {"requests": {"cpu": "2"}, "limits": {"cpu": 8}},
    ),
    ResourceCase(
        "gpu-operators-gpu-count-wins-over-the-users",
        {
            "accelerators": 4,
            "pod": {
                "resources": {
                    "requests": {GPU_RESOURCE: "1", "memory": "8Gi"},
                    "limits": {GPU_RESOURCE: "2", "example.com/fpga": "1"},
                }
            },
        },
        {
            "requests": {GPU_RESOURCE: "4", "memory": "8Gi"},
            "limits": {GPU_RESOURCE: "4", "example.com/fpga": "1"},
        },
    ),
    ResourceCase(
        "cpu-device-adds-its-cpu-request-to-the-users-resources",
        {"device": "cpu", "accelerators": 3, "pod": {"resources": {"requests": {"memory": "1Gi"}}}},
        {"requests": {"memory": "1Gi", "cpu": "3"}},
    ),
]


@pytest.mark.parametrize("case", RESOURCE_CASES, ids=[c.id for c in RESOURCE_CASES])
def test_worker_resources(make_job: MakeJob, case: ResourceCase) -> None:
    pod = build_worker_pod(make_job(**case.setters).obj(), 0)
    assert container(pod)["resources"] == case.want


@pytest.mark.parametrize("device", ["gpu", "cpu"])
def test_head_requests_no_accelerator_and_prefers_nodes_without_gpus(make_job: MakeJob, device: str) -> None:
    pod = build_head_pod(make_job(device=device, accelerators=8).obj())
    resources = container(pod)["resources"]
    assert resources == {"requests": {"cpu": "1", "memory": "2Gi"}}
    assert GPU_RESOURCE not in resources.get("limits", {})
    [preference] = pod["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preference["weight"] == 100
    assert preference["preference"]["matchExpressions"] == [
        {"key": GPU_PRESENT_LABEL, "operator": "NotIn", "values": ["true"]}
    ]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in pod["spec"]["affinity"]["nodeAffinity"]


def test_built_pods_share_no_mutable_state(make_job: MakeJob) -> None:
    """Builders are pure: changing one built pod must not change the next one (or the job)."""
    job = make_job(scheduling={"affinity": {"nodeAffinity": {"x": [1]}}}).obj()
    head, worker = build_head_pod(job), build_worker_pod(job, 0)
    container(head)["resources"]["requests"]["cpu"] = "999"
    worker["spec"]["affinity"]["nodeAffinity"]["x"].append(2)
    assert container(build_head_pod(job))["resources"]["requests"]["cpu"] == "1"
    assert build_worker_pod(job, 0)["spec"]["affinity"] == {"nodeAffinity": {"x": [1]}}


# -- containers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "command"), [(Role.HEAD, HEAD_COMMAND), (Role.WORKER, WORKER_COMMAND)])
def test_container_image_command_and_pod_restart_policy(
    make_job: MakeJob, role: Role, command: tuple[str, ...]
) -> None:
    job = make_job().obj()
    pod = build(job, role, 1)
    assert container(pod)["image"] == "registry.example/elastrain/trainer:1"
    assert container(pod)["imagePullPolicy"] == "IfNotPresent"
    assert container(pod)["command"] == list(command)
    # The operator replaces failed pods itself; the kubelet must not restart them behind its back.
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["enableServiceLinks"] is False


@pytest.mark.parametrize("role", [Role.HEAD, Role.WORKER])
def test_the_trainers_last_words_reach_the_container_status(make_job: MakeJob, role: Role) -> None:
    c = container(build(make_job().obj(), role, 0))
    # Where the trainer writes why it stopped, and the log's tail when it crashed before it could.
    assert c["terminationMessagePath"] == TERMINATION_LOG == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_head_serves_ray_lighthouse_and_progress_ports(make_job: MakeJob) -> None:
    ports = {p["name"]: p["containerPort"] for p in container(build_head_pod(make_job().obj()))["ports"]}
    assert ports == {"ray-gcs": RAY_PORT, "lighthouse": LIGHTHOUSE_PORT, "progress": PROGRESS_PORT}
    assert "ports" not in container(build_worker_pod(make_job().obj(), 0))


# -- security ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "index"), [(Role.HEAD, 0), (Role.WORKER, 3)])
def test_restricted_security_context(make_job: MakeJob, role: Role, index: int) -> None:
    pod = build(make_job().obj(), role, index)
    pod_sc = pod["spec"]["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] != 0
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(pod)["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "privileged" not in sc


@pytest.mark.parametrize(
    ("overrides", "automount", "account"),
    [
        (None, False, None),
        ({"annotations": {"a": "b"}}, False, None),
        ({"serviceAccountName": "trainer-sa"}, True, "trainer-sa"),
    ],
    ids=["no-overrides", "overrides-without-account", "service-account"],
)
@pytest.mark.parametrize("role", [Role.HEAD, Role.WORKER])
def test_service_account_token_only_with_a_service_account(
    make_job: MakeJob, role: Role, overrides: dict[str, Any] | None, automount: bool, account: str | None
) -> None:
    wrapper = make_job() if overrides is None else make_job(pod=overrides)
    spec = build(wrapper.obj(), role, 0)["spec"]
    assert spec["automountServiceAccountToken"] is automount
    assert spec.get("serviceAccountName") == account


# -- env --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "index"), [(Role.HEAD, None), (Role.WORKER, 0), (Role.WORKER, 5)])
def test_env_contract_round_trips_through_the_trainers_reader(make_job: MakeJob, role: Role, index: int | None) -> None:
    job = make_job(replicas=3, elastic=(2, 5), device="cpu", accelerators=2, checkpoint_uri="file:///shared/demo").obj()
    pod = build(job, role, index or 0)
    contract = read_pod_env(literal_env(pod))
    assert contract.job_name == JOB_NAME
    assert contract.namespace == NAMESPACE
    assert contract.role == role.value
    assert contract.worker_index == index
    assert contract.head_address == head_address(JOB_NAME, NAMESPACE) == "demo-head.ml.svc"
    assert (contract.ray_port, contract.lighthouse_port, contract.progress_port) == (
        RAY_PORT,
        LIGHTHOUSE_PORT,
        PROGRESS_PORT,
    )
    assert (contract.min_workers, contract.max_workers) == (2, 5)
    assert contract.accelerators_per_worker == 2
    assert contract.device == "cpu"
    assert contract.trainer == job.spec.trainer
    assert contract.checkpoint is not None
    assert (contract.checkpoint.location, contract.checkpoint.interval_steps, contract.checkpoint.keep) == (
        "file:///shared/demo",
        10,
        2,
    )


def test_env_without_elastic_or_checkpoint(make_job: MakeJob) -> None:
    env = literal_env(build_worker_pod(make_job(replicas=4).obj(), 2))
    assert PodEnv.CHECKPOINT.value not in env
    contract = read_pod_env(env)
    assert (contract.min_workers, contract.max_workers) == (4, 4)
    assert contract.checkpoint is None
    assert contract.device == "gpu"


def test_env_names_pod_name_and_ip_by_downward_api_then_user_env(make_job: MakeJob) -> None:
    user = [
        {"name": "NCCL_DEBUG", "value": "INFO"},
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
    ]
    env = container(build_worker_pod(make_job(pod={"env": user}).obj(), 0))["env"]
    names = [e["name"] for e in env]
    contract_names = sorted(
        n for n in names if n.startswith("ELASTRAIN_") and n not in ("ELASTRAIN_POD_NAME", "ELASTRAIN_POD_IP")
    )
    ray = ["RAY_AUTH_MODE", "RAY_AUTH_TOKEN"]
    assert names == [*contract_names, PodEnv.POD_NAME.value, PodEnv.POD_IP.value, *ray, "NCCL_DEBUG", "HF_TOKEN"]
    by_name = {e["name"]: e for e in env}
    assert by_name[PodEnv.POD_NAME.value] == {
        "name": PodEnv.POD_NAME.value,
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    }
    assert by_name[PodEnv.POD_IP.value]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env[-2:] == user


def test_env_of_the_head_has_no_worker_index(make_job: MakeJob) -> None:
    job = make_job().obj()
    assert PodEnv.WORKER_INDEX.value not in literal_env(build_head_pod(job))
    assert literal_env(build_worker_pod(job, 3))[PodEnv.WORKER_INDEX.value] == "3"
    # build_env ignores an index given for the head
    assert PodEnv.WORKER_INDEX.value not in {e["name"] for e in build_env(job, role=Role.HEAD, index=4)}


# -- volumes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeCase:
    id: str
    setters: dict[str, Any]
    volumes: list[dict[str, Any]]
    mounts: list[dict[str, Any]]
    checkpoint_location: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


SHM = {"name": "dshm", "emptyDir": {"medium": "Memory"}}
SHM_MOUNT = {"name": "dshm", "mountPath": "/dev/shm"}
VOLUME_CASES = [
    VolumeCase("shared-memory-only", {}, [SHM], [SHM_MOUNT]),
    VolumeCase(
        "checkpoint-pvc",
        {"checkpoint_pvc": "ckpt"},
        [SHM, {"name": "checkpoints", "persistentVolumeClaim": {"claimName": "ckpt"}}],
        [SHM_MOUNT, {"name": "checkpoints", "mountPath": CHECKPOINT_MOUNT_PATH, "subPath": ""}],
        checkpoint_location=CHECKPOINT_MOUNT_PATH,
    ),
    VolumeCase(
        "checkpoint-uri-mounts-nothing",
        {"checkpoint_uri": "file:///b/p"},
        [SHM],
        [SHM_MOUNT],
        checkpoint_location="file:///b/p",
    ),
    VolumeCase(
        "user-volumes-after-operators",
        {
            "pod": {
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "tokens", "readOnly": True}}],
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
            }
        },
        [SHM, {"name": "data", "persistentVolumeClaim": {"claimName": "tokens", "readOnly": True}}],
        [SHM_MOUNT, {"name": "data", "mountPath": "/data", "readOnly": True}],
    ),
    VolumeCase(
        "users-own-dev-shm-replaces-the-operators",
        {
            "pod": {
                "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}}],
                "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
            }
        },
        [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}}],
        [SHM_MOUNT],
    ),
    VolumeCase(
        "users-dev-shm-under-another-name",
        {
            "pod": {
                "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}],
                "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
            }
        },
        [{"name": "shm", "emptyDir": {"medium": "Memory"}}],
        [{"name": "shm", "mountPath": "/dev/shm"}],
    ),
]


@pytest.mark.parametrize("case", VOLUME_CASES, ids=[c.id for c in VOLUME_CASES])
@pytest.mark.parametrize("role", [Role.HEAD, Role.WORKER])
def test_volumes_and_mounts(make_job: MakeJob, case: VolumeCase, role: Role) -> None:
    pod = build(make_job(**case.setters).obj(), role, 0)
    assert pod["spec"]["volumes"] == case.volumes
    assert container(pod)["volumeMounts"] == case.mounts
    contract = read_pod_env(literal_env(pod))
    location = contract.checkpoint.location if contract.checkpoint else None
    assert location == case.checkpoint_location


def test_checkpoint_pvc_directory_becomes_the_mounts_subpath(make_job: MakeJob) -> None:
    wrapper = make_job()
    wrapper.checkpoint_pvc("ckpt", "/jobs/demo")
    mounts = container(build_worker_pod(wrapper.obj(), 0))["volumeMounts"]
    assert {"name": "checkpoints", "mountPath": CHECKPOINT_MOUNT_PATH, "subPath": "jobs/demo"} in mounts


# -- scheduling -------------------------------------------------------------------------------------

SCHEDULING = {
    "nodeSelector": {"pool": "a100"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
    "priorityClassName": "batch-low",
    "schedulerName": "volcano",
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
    ],
}


def test_worker_copies_every_scheduling_field(make_job: MakeJob) -> None:
    spec = build_worker_pod(make_job(scheduling=SCHEDULING).obj(), 0)["spec"]
    for key, value in SCHEDULING.items():
        assert spec[key] == value, key


def test_head_ignores_worker_scheduling(make_job: MakeJob) -> None:
    spec = build_head_pod(make_job(scheduling=SCHEDULING).obj())["spec"]
    for key in ("nodeSelector", "tolerations", "priorityClassName", "schedulerName", "topologySpreadConstraints"):
        assert key not in spec, key
    assert "podAntiAffinity" not in spec["affinity"]


def test_worker_without_scheduling_has_no_placement_fields(make_job: MakeJob) -> None:
    spec = build_worker_pod(make_job(scheduling={"nodeSelector": {"pool": "x"}}).obj(), 0)["spec"]
    assert spec["nodeSelector"] == {"pool": "x"}
    for key in ("tolerations", "affinity", "priorityClassName", "schedulerName", "topologySpreadConstraints"):
        assert key not in spec, key


# -- service ----------------------------------------------------------------------------------------


def test_head_service_is_headless_published_early_and_selects_the_head() -> None:
    svc = build_head_service(job="demo", namespace="ml", uid=UID)
    assert (svc["apiVersion"], svc["kind"]) == ("v1", "Service")
    assert svc["metadata"]["name"] == "demo-head"
    assert svc["metadata"]["namespace"] == "ml"
    assert svc["metadata"]["labels"] == {Label.JOB: "demo", Label.ROLE: "head"}
    [ref] = svc["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == (
        KIND,
        "demo",
        UID,
        True,
        True,
    )
    spec = svc["spec"]
    assert spec["clusterIP"] == "None"
    assert spec["publishNotReadyAddresses"] is True
    assert spec["selector"] == {Label.JOB: "demo", Label.ROLE: "head"}
    assert {p["name"]: (p["port"], p["targetPort"]) for p in spec["ports"]} == {
        "ray-gcs": (RAY_PORT, RAY_PORT),
        "lighthouse": (LIGHTHOUSE_PORT, LIGHTHOUSE_PORT),
        "progress": (PROGRESS_PORT, PROGRESS_PORT),
    }


def test_service_selector_matches_the_head_pod_and_no_worker(make_job: MakeJob) -> None:
    job = make_job().obj()
    selector = build_head_service(job="demo", namespace="ml", uid=UID)["spec"]["selector"]

    def selected(pod: dict[str, Any]) -> bool:
        return all(pod["metadata"]["labels"].get(k) == v for k, v in selector.items())

    assert selected(build_head_pod(job))
    assert not selected(build_worker_pod(job, 0))


def test_disruption_budget_keeps_the_minimum_of_workers_and_leaves_the_head_alone(make_job: MakeJob) -> None:
    job = make_job().obj()
    pdb = build_disruption_budget(job="demo", namespace="ml", uid=UID, min_available=2)
    assert (pdb["apiVersion"], pdb["kind"]) == ("policy/v1", "PodDisruptionBudget")
    assert (pdb["metadata"]["name"], pdb["metadata"]["namespace"]) == ("demo-workers", "ml")
    assert pdb["metadata"]["labels"] == {Label.JOB: "demo"}
    [ref] = pdb["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (KIND, "demo", UID, True)
    assert pdb["spec"]["minAvailable"] == 2
    selector = pdb["spec"]["selector"]["matchLabels"]

    def selected(pod: dict[str, Any]) -> bool:
        return all(pod["metadata"]["labels"].get(k) == v for k, v in selector.items())

    assert selected(build_worker_pod(job, 0)) and selected(build_worker_pod(job, 3, attempt=2))
    assert not selected(build_head_pod(job))


def test_worker_selector_string_matches_worker_labels_only(make_job: MakeJob) -> None:
    job = make_job().obj()
    terms = dict(term.split("=") for term in worker_selector("demo").split(","))
    assert terms == {Label.JOB.value: "demo", Label.ROLE.value: "worker"}
    assert all(build_worker_pod(job, 1)["metadata"]["labels"][k] == v for k, v in terms.items())
    assert build_head_pod(job)["metadata"]["labels"][Label.ROLE] != terms[Label.ROLE.value]


def test_ray_token_auth_comes_from_the_jobs_own_secret(make_job: MakeJob) -> None:
    job = make_job().obj()
    env = {e["name"]: e for e in build_worker_pod(job, 0)["spec"]["containers"][0]["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    ref = env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": f"{job.metadata.name}-ray-auth", "key": "token"}
    secret = build_ray_auth_secret(job=job.metadata.name or "", namespace="ns", uid="u1", token="t0k3n")
    assert secret["metadata"]["name"] == ref["name"]
    assert secret["stringData"] == {"token": "t0k3n"}
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert secret["metadata"]["labels"] == {"elastrain.dev/job": job.metadata.name}


def test_export_pvc_is_mounted_and_named_in_the_contract(make_job: MakeJob) -> None:
    wrapper = make_job()
    wrapper.export({"pvc": {"claimName": "models", "path": "/exports/demo"}})
    pod = build(wrapper.obj(), Role.HEAD, 0)
    assert {"name": "export", "persistentVolumeClaim": {"claimName": "models"}} in pod["spec"]["volumes"]
    assert {"name": "export", "mountPath": EXPORT_MOUNT_PATH, "subPath": "exports/demo"} in container(pod)[
        "volumeMounts"
    ]
    contract = read_pod_env(literal_env(pod))
    assert contract.export is not None and contract.export.location == EXPORT_MOUNT_PATH


def test_export_uri_mounts_nothing_and_reaches_the_contract(make_job: MakeJob) -> None:
    wrapper = make_job()
    wrapper.export({"uri": "file:///shared/models"})
    pod = build(wrapper.obj(), Role.WORKER, 0)
    assert all(v["name"] != "export" for v in pod["spec"]["volumes"])
    contract = read_pod_env(literal_env(pod))
    assert contract.export is not None and contract.export.location == "file:///shared/models"
    assert read_pod_env(literal_env(build(make_job().obj(), Role.HEAD, 0))).export is None


EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_examples_pods_have_unique_volume_names_and_mount_paths(path: Path) -> None:
    """What the API server checks only when the pod is created (a duplicate is InvalidSpec after apply)."""
    job = parse_trainingjob(yaml.safe_load(path.read_text()))
    for pod in (build_head_pod(job), build_worker_pod(job, 0)):
        names = [v["name"] for v in pod["spec"]["volumes"]]
        paths = [m["mountPath"] for m in container(pod)["volumeMounts"]]
        assert len(names) == len(set(names)), names
        assert len(paths) == len(set(paths)), paths
        assert set(paths) >= {"/dev/shm"}
        assert {m["name"] for m in container(pod)["volumeMounts"]} <= set(names)
