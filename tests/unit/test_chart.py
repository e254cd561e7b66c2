"""The Helm chart, rendered by the real helm binary: lint, defaults, non-default values, schema refusals."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from elastrain_dev.cluster import build_binaries
from elastrain_operator.api.generated import CRD_PATH, HELM_KEEP_ANNOTATION, render_generated_files
from elastrain_operator.builders.network import build_network_policy
from elastrain_operator.settings import load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "elastrain"
RELEASE, NAMESPACE = "ops", "elastrain-system"
FULLNAME = f"{RELEASE}-elastrain"

Objects = dict[tuple[str, str, str], dict[str, Any]]  # (kind, namespace, name) -> object


@cache
def helm_binary() -> Path:
    return build_binaries() / "helm"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, check=False, timeout=60)


def set_args(values: dict[str, Any]) -> Iterator[str]:
    for key, value in values.items():
        yield from ("--set-json", f"{key}={json.dumps(value)}")


def render(**values: Any) -> Objects:
    """`helm template` with ``values`` (dotted keys, JSON values); every object by kind, namespace and name."""
    proc = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *set_args(values))
    assert proc.returncode == 0, proc.stderr
    objects: Objects = {}
    for doc in yaml.safe_load_all(proc.stdout):
        if doc:
            meta = doc["metadata"]
            key = (doc["kind"], meta.get("namespace", ""), meta["name"])
            assert key not in objects, f"{key} rendered twice"
            objects[key] = doc
    return objects


def refusal(**values: Any) -> str:
    """`helm template` must fail; return its message."""
    proc = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *set_args(values))
    assert proc.returncode != 0, f"values {values} were accepted"
    return proc.stderr


def deployment(objects: Objects) -> dict[str, Any]:
    return objects[("Deployment", NAMESPACE, FULLNAME)]


def container_env(objects: Objects) -> dict[str, str]:
    (container,) = deployment(objects)["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


def rules(objects: Objects, kind: str, namespace: str, name: str) -> list[dict[str, Any]]:
    rules_: list[dict[str, Any]] = objects[(kind, namespace, name)]["rules"]
    return rules_


def grants(rule_list: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Every (apiGroup, resource, verb) the rules allow."""
    return {
        (group, resource, verb)
        for rule in rule_list
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


NAMESPACED_GRANTS = {("elastrain.dev", "trainingjobs", verb) for verb in ("list", "watch", "delete")} | {
    ("elastrain.dev", "trainingjobs/status", "patch"),
    *(("", "pods", verb) for verb in ("list", "watch", "create", "delete")),
    *(("", "services", verb) for verb in ("list", "watch", "create")),
    ("", "secrets", "create"),
    *(("networking.k8s.io", "networkpolicies", verb) for verb in ("list", "watch", "create")),
    ("policy", "poddisruptionbudgets", "create"),
    ("", "events", "create"),
}
CLUSTER_READS = {("", "nodes", "list"), ("", "nodes", "watch")} | {
    ("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("list", "watch")
}


# -- lint ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"rbac.namespaced": True, "watchNamespaces": ["team-a", "team-b"], "metrics.serviceMonitor.enabled": True},
        {"crds.enabled": False, "replicaCount": 1, "operator.leaderElection.enabled": False},
    ],
    ids=["defaults", "namespaced-servicemonitor", "no-crds-single"],
)
def test_helm_lint_is_clean(values: dict[str, Any]) -> None:
    proc = helm("lint", "--strict", str(CHART), *set_args(values))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


# -- defaults --------------------------------------------------------------------------------------


def test_default_render_has_every_component() -> None:
    kinds = {(kind, ns, name) for kind, ns, name in render()}
    assert kinds == {
        ("CustomResourceDefinition", "", "trainingjobs.elastrain.dev"),
        ("ServiceAccount", NAMESPACE, FULLNAME),
        ("ClusterRole", "", FULLNAME),
        ("ClusterRoleBinding", "", FULLNAME),
        ("Role", NAMESPACE, f"{FULLNAME}-leader-election"),
        ("RoleBinding", NAMESPACE, f"{FULLNAME}-leader-election"),
        ("Deployment", NAMESPACE, FULLNAME),
        ("PodDisruptionBudget", NAMESPACE, FULLNAME),
        ("Service", NAMESPACE, f"{FULLNAME}-metrics"),
    }


def test_the_chart_crd_is_the_generated_crd_kept_on_uninstall() -> None:
    crd = render()[("CustomResourceDefinition", "", "trainingjobs.elastrain.dev")]
    assert crd["metadata"].pop("annotations") == HELM_KEEP_ANNOTATION
    assert crd == yaml.safe_load(render_generated_files()[CRD_PATH])


def test_default_deployment_runs_two_replicas_with_leader_election() -> None:
    objects = render()
    deploy = deployment(objects)
    assert deploy["spec"]["replicas"] == 2
    env = container_env(objects)
    # The operator's own parser accepts what the chart sets, and reads what the values meant.
    settings = load_settings(env)
    assert settings.leader_election is True
    assert settings.lease_namespace == NAMESPACE
    assert settings.lease_name == "elastrain-operator"
    assert settings.namespaces == ()
    assert (settings.metrics_port, settings.liveness_port) == (8080, 8081)
    lease_role = rules(objects, "Role", NAMESPACE, f"{FULLNAME}-leader-election")
    assert grants(lease_role) == {("coordination.k8s.io", "leases", v) for v in ("create", "get", "update")}
    assert [r.get("resourceNames") for r in lease_role if "get" in r["verbs"]] == [["elastrain-operator"]]


def test_default_deployment_is_restricted_and_probed() -> None:
    pod = deployment(render())["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "elastrain/operator:0.1.0"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    probe = container["livenessProbe"]
    assert probe["httpGet"] == {"path": "/healthz", "port": "healthz"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "healthz": 8081}
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert pod["serviceAccountName"] == FULLNAME


def test_default_rbac_is_cluster_wide_and_least_privilege() -> None:
    objects = render()
    cluster_role = rules(objects, "ClusterRole", "", FULLNAME)
    assert grants(cluster_role) == NAMESPACED_GRANTS | CLUSTER_READS
    binding = objects[("ClusterRoleBinding", "", FULLNAME)]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    for rule in cluster_role:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]


def test_metrics_service_selects_the_operator_pods() -> None:
    objects = render()
    service = objects[("Service", NAMESPACE, f"{FULLNAME}-metrics")]
    pod_labels = deployment(objects)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]


# -- non-default values ----------------------------------------------------------------------------


def test_namespaced_rbac_renders_a_role_per_watched_namespace() -> None:
    objects = render(**{"rbac.namespaced": True, "watchNamespaces": ["team-a", "team-b"]})
    for ns in ("team-a", "team-b"):
        assert grants(rules(objects, "Role", ns, FULLNAME)) == NAMESPACED_GRANTS
        binding = objects[("RoleBinding", ns, FULLNAME)]
        assert binding["roleRef"]["name"] == FULLNAME and binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"][0]["namespace"] == NAMESPACE
    # Only cluster-scoped reads stay cluster-wide (kopf lists namespaces when given a list of them).
    cluster_reads = grants(rules(objects, "ClusterRole", "", FULLNAME))
    assert cluster_reads == CLUSTER_READS | {("", "namespaces", "list"), ("", "namespaces", "watch")}
    assert load_settings(container_env(objects)).namespaces == ("team-a", "team-b")


def test_service_monitor_scrapes_the_metrics_service() -> None:
    objects = render(**{"metrics.serviceMonitor.enabled": True, "metrics.serviceMonitor.labels": {"release": "prom"}})
    monitor = objects[("ServiceMonitor", NAMESPACE, FULLNAME)]
    service = objects[("Service", NAMESPACE, f"{FULLNAME}-metrics")]
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert ("ServiceMonitor", NAMESPACE, FULLNAME) not in render()


def test_crds_disabled_renders_no_crd() -> None:
    objects = render(**{"crds.enabled": False})
    assert not [key for key in objects if key[0] == "CustomResourceDefinition"]
    assert ("Deployment", NAMESPACE, FULLNAME) in objects


def test_single_replica_without_leader_election() -> None:
    objects = render(replicaCount=1, **{"operator.leaderElection.enabled": False})
    assert deployment(objects)["spec"]["replicas"] == 1
    assert load_settings(container_env(objects)).leader_election is False
    assert not [key for key in objects if key[0] in ("Role", "PodDisruptionBudget")]


def test_image_digest_wins_over_the_tag() -> None:
    digest = "sha256:" + "ab" * 32
    objects = render(**{"image.digest": digest, "image.tag": "0.1.1", "image.repository": "registry.local/op"})
    (container,) = deployment(objects)["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"registry.local/op@{digest}"


def test_operator_settings_reach_the_environment() -> None:
    objects = render(
        **{
            "operator.resyncSeconds": 5,
            "operator.leaderElection.leaseName": "tj-leader",
            "operator.leaderElection.leaseSeconds": 30,
            "metrics.port": 9090,
            "watchNamespaces": ["ml"],
            "operator.extraEnv": [{"name": "TZ", "value": "UTC"}],
        }
    )
    settings = load_settings(container_env(objects))
    assert (settings.resync_seconds, settings.lease_name, settings.lease_seconds) == (5.0, "tj-leader", 30)
    assert (settings.metrics_port, settings.namespaces) == (9090, ("ml",))
    assert container_env(objects)["TZ"] == "UTC"
    lease_role = rules(objects, "Role", NAMESPACE, f"{FULLNAME}-leader-election")
    assert [r.get("resourceNames") for r in lease_role if "get" in r["verbs"]] == [["tj-leader"]]


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": -1}, "/replicaCount"),
        ({"image.pullPolicy": "Sometimes"}, "/image/pullPolicy"),
        ({"image.tag": "latest"}, 'image.tag "latest" is refused: it changes under a running operator; set image.tag'),
        ({"image.digest": "sha256:abc"}, "/image/digest"),
        ({"metrics.port": 0}, "/metrics/port"),
        ({"operator.leaderElection.leaseSeconds": 1}, "/operator/leaderElection/leaseSeconds"),
        ({"operator.resyncSeconds": 0}, "/operator/resyncSeconds"),
        ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
        ({"rbac.namespaced": True}, "rbac.namespaced: true needs watchNamespaces, e.g. --set"),
        ({"rbac.namespaced": True, "watchNamespaces": []}, "rbac.namespaced: true needs watchNamespaces"),
        ({"replicas": 3}, "additional properties 'replicas' not allowed"),
        ({"metrics.serviceMonitor.interval": "often"}, "/metrics/serviceMonitor/interval"),
        (
            {"replicaCount": 2, "operator.leaderElection.enabled": False},
            "replicaCount 2 needs operator.leaderElection.enabled=true",
        ),
        (
            {"metrics.serviceMonitor.enabled": True, "metrics.service.enabled": False},
            "metrics.serviceMonitor.enabled needs metrics.service.enabled",
        ),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else "",
)
def test_bad_values_are_refused(values: dict[str, Any], message: str) -> None:
    said = refusal(**values)
    assert message in said
    # A schema combinator's failure names no value and no fix.
    assert not re.search(r"'(not|if|then|else|anyOf|oneOf|allOf)' failed", said), said


@pytest.mark.parametrize(
    "values", [{}, {"nameOverride": "trainer-ops"}, {"fullnameOverride": "ops"}], ids=["defaults", "name", "fullname"]
)
def test_every_jobs_network_policy_admits_the_charts_operator_pods(values: dict[str, Any]) -> None:
    """The per-job policy selects the operator by fixed labels, which no name override changes."""
    pods = next(o for (kind, _, _), o in render(**values).items() if kind == "Deployment")["spec"]["template"]
    policy = build_network_policy(job="j", namespace="ml", uid="u")
    (from_operator,) = [rule for rule in policy["spec"]["ingress"] if "ports" in rule]
    (peer,) = from_operator["from"]
    assert peer["podSelector"]["matchLabels"].items() <= pods["metadata"]["labels"].items()
