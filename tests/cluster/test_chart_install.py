"""The Helm chart on the real API server: install, upgrade, uninstall, and the chart's RBAC running the operator.

The operator runs as a process (the real ``elastrain-operator`` entry point, leader election on) with the
credentials of the chart's ServiceAccount and the environment of the chart's Deployment: the chart's own
pods sit on KWOK nodes, which run no containers. The TrainingJob CRD is cluster-scoped and shared by the
whole test session, so installs take ownership of it (``--take-ownership``) and nothing here deletes it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from elastrain_dev.audit import read_requests
from elastrain_dev.cluster import LocalCluster
from elastrain_dev.jobdriver import JobDriver
from elastrain_dev.processes import free_port
from elastrain_dev.wait import until
from elastrain_operator.api.generated import CRD_PATH, render_generated_files

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "elastrain"
QUICKSTART = REPO_ROOT / "docs" / "quickstart.md"
CRD_NAME = "trainingjobs.elastrain.dev"
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"


# -- helpers ---------------------------------------------------------------------------------------


def helm(cluster: LocalCluster, *args: str, kubeconfig: Path | None = None) -> str:
    env = {**os.environ, **cluster.env()}
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    proc = subprocess.run(
        [str(cluster.bin_dir / "helm"), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, f"helm {shlex.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@contextmanager
def fresh_namespace(cluster: LocalCluster, prefix: str, *, restricted: bool = True) -> Iterator[str]:
    """A new namespace (enforcing the restricted Pod Security Standard), deleted without waiting afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    if restricted:
        cluster.kubectl("label", "namespace", name, RESTRICTED)
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=60s")
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def get_json(cluster: LocalCluster, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)
    return result


def deployment_env(cluster: LocalCluster, namespace: str, name: str) -> dict[str, str]:
    """The operator container's environment as the chart rendered it (plain values only)."""
    deploy = get_json(cluster, "deployment", name, "-n", namespace)
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


@contextmanager
def chart_operator(cluster: LocalCluster, *, namespace: str, release: str, log: Path) -> Iterator[int]:
    """Run `elastrain-operator` as the chart's ServiceAccount with the chart's settings; yield its liveness port."""
    exe = shutil.which("elastrain-operator", path=str(Path(sys.executable).parent))
    assert exe, "elastrain-operator is not installed next to this Python; run make venv"
    kubeconfig = cluster.service_account_kubeconfig(namespace, release, log.with_suffix(".kubeconfig"))
    liveness = free_port()
    env = {
        **os.environ,
        **deployment_env(cluster, namespace, release),
        "KUBECONFIG": str(kubeconfig),
        "ELASTRAIN_METRICS_PORT": str(free_port()),
        "ELASTRAIN_LIVENESS_PORT": str(liveness),
    }
    assert env["ELASTRAIN_LEADER_ELECTION"] == "true"
    assert env["ELASTRAIN_LEASE_NAMESPACE"] == namespace
    with log.open("w") as out:
        proc = subprocess.Popen([exe], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield liveness
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log.read_text()
    # RBAC denials name the user; kopf warns when it may not list or watch what it needs.
    assert "system:serviceaccount:" not in text, f"the chart's RBAC refused the operator:\n{text[-4000:]}"
    assert "Not enough permissions" not in text, text[-4000:]


def assert_pods_admitted(cluster: LocalCluster, namespace: str) -> None:
    events = get_json(cluster, "events", "-n", namespace)["items"]
    refused = [e["message"] for e in events if e.get("reason") == "FailedCreate" or "forbidden" in e["message"]]
    assert not refused, refused


def can_i(cluster: LocalCluster, account: str, *args: str) -> bool:
    proc = cluster.kubectl("auth", "can-i", *args, f"--as=system:serviceaccount:{account}", check=False)
    return proc.stdout.strip() == "yes"


def lease_holder(cluster: LocalCluster, namespace: str, name: str = "elastrain-operator") -> str:
    """The leader Lease's holder, or "" while there is none."""
    proc = cluster.kubectl("get", "lease", name, "-n", namespace, "-o", "jsonpath={.spec.holderIdentity}", check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def phase_events(job: JobDriver) -> list[dict[str, Any]]:
    """The job's phase-change Events ("OLD -> NEW: why")."""
    return [e for e in job.events() if " -> " in e["message"]]


def lease_renewed(cluster: LocalCluster, namespace: str, name: str = "elastrain-operator") -> str:
    """The leader Lease's renewTime ("" while there is none)."""
    proc = cluster.kubectl("get", "lease", name, "-n", namespace, "-o", "jsonpath={.spec.renewTime}", check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def generated_crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(render_generated_files()[CRD_PATH])
    return crd


# -- install, upgrade, uninstall ---------------------------------------------------------------------


def _healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return int(resp.status)
    except OSError:
        return 0


def test_install_upgrade_and_uninstall_keep_the_crd_and_the_jobs(cluster: LocalCluster, tmp_path: Path) -> None:
    with fresh_namespace(cluster, "chart") as release_ns, fresh_namespace(cluster, "chart-jobs") as jobs_ns:
        release = "lifecycle"
        # An older chart whose CRD lacks a printer column: the upgrade below must bring it.
        old_chart = tmp_path / "elastrain"
        shutil.copytree(CHART, old_chart)
        template = old_chart / "templates" / "crds" / f"{CRD_NAME}.yaml"
        old = re.sub(r"    - name: Loss\n(      .*\n)+", "", template.read_text())
        assert old != template.read_text()
        template.write_text(old)
        try:
            # --wait: the operator pods (on KWOK nodes) are admitted under `restricted` and become ready.
            helm(cluster, "install", release, str(old_chart), "-n", release_ns, "--take-ownership", "--wait")
            manifest = helm(cluster, "get", "manifest", release, "-n", release_ns)
            for obj in yaml.safe_load_all(manifest):
                if obj:
                    ns = obj["metadata"].get("namespace")
                    cluster.kubectl("get", obj["kind"], obj["metadata"]["name"], *(["-n", ns] if ns else []))
            crd = get_json(cluster, "crd", CRD_NAME)
            assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
            assert "Loss" not in [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]

            job = JobDriver(cluster, jobs_ns, base=yaml.safe_load((REPO_ROOT / "examples/cpu-tiny.yaml").read_text()))
            job.name = "kept"
            job.create()

            changes = ["--set", "operator.resyncSeconds=5", "--set", "replicaCount=1"]
            helm(cluster, "upgrade", release, str(CHART), "-n", release_ns, "--reuse-values", "--wait", *changes)
            deploy = get_json(cluster, "deployment", f"{release}-elastrain", "-n", release_ns)
            assert deploy["spec"]["replicas"] == 1
            assert deployment_env(cluster, release_ns, f"{release}-elastrain")["ELASTRAIN_RESYNC_SECONDS"] == "5"
            crd = get_json(cluster, "crd", CRD_NAME)
            wanted = generated_crd()["spec"]
            assert crd["spec"]["versions"] == wanted["versions"], "the upgrade did not bring the chart's CRD"
            assert crd["spec"]["names"] == wanted["names"]
        finally:
            out = helm(cluster, "uninstall", release, "-n", release_ns, "--wait")
        assert "kept due to the resource policy" in out and CRD_NAME in out
        assert cluster.kubectl("get", "crd", CRD_NAME, check=False).returncode == 0
        assert job.get() is not None, "helm uninstall deleted a user's TrainingJob"
        for kind, name, ns in [
            ("deployment", f"{release}-elastrain", release_ns),
            ("clusterrole", f"{release}-elastrain", None),
            ("serviceaccount", f"{release}-elastrain", release_ns),
        ]:
            gone = cluster.kubectl("get", kind, name, *(["-n", ns] if ns else []), check=False)
            assert "NotFound" in gone.stderr, f"{kind}/{name} survived helm uninstall"
        job.kubectl("delete", "tj", job.name, "--wait=false")


# -- the quickstart, with the chart's RBAC (cluster-wide) ---------------------------------------------

#: Commands of docs/quickstart.md that this test runs, in the order it runs them.
RUN = [
    "helm install elastrain helm/elastrain --namespace elastrain-system --create-namespace",
    "kubectl -n elastrain-system rollout status deployment/elastrain",
    "kubectl -n elastrain-system get lease elastrain-operator",
    "kubectl apply -f examples/cpu-tiny.yaml",
    "kubectl get tj cpu-tiny",
    "kubectl describe tj cpu-tiny",
    "kubectl get pods -l elastrain.dev/job=cpu-tiny",
    "kubectl scale tj cpu-tiny --replicas=3",
    """kubectl patch tj cpu-tiny --type merge -p '{"spec":{"runPolicy":{"suspend":true}}}'""",
    """kubectl patch tj cpu-tiny --type merge -p '{"spec":{"runPolicy":{"suspend":false}}}'""",
    "kubectl delete tj cpu-tiny",
    "helm uninstall elastrain --namespace elastrain-system",
]
#: Commands of docs/quickstart.md that cannot run here (the page marks their blocks `not run: why`).
NOT_RUN = ["kubectl get tj cpu-tiny -w", "kubectl delete crd trainingjobs.elastrain.dev"]
#: The marker of the page's blocks this test runs (tests/unit/test_docs_commands.py checks every block has one).
RUN_MARKER = "<!-- run: tests/cluster/test_chart_install.py::test_quickstart -->"


def quickstart_blocks() -> list[tuple[str, list[str]]]:
    """(marker line above the block, its command lines) for every shell block of the quickstart."""
    found = re.findall(
        r"^(<!--[^\n]*-->)?\n?```sh\n(.*?)```", QUICKSTART.read_text(encoding="utf-8"), flags=re.S | re.M
    )
    return [(marker, [line.strip() for line in body.splitlines() if line.strip()]) for marker, body in found]


def quickstart_commands() -> list[str]:
    """Every command in the quickstart's shell blocks, in the page's order."""
    return [command for _, commands in quickstart_blocks() for command in commands]


def notes_commands(notes: str) -> list[str]:
    """The commands NOTES.txt prints, with its placeholders filled in as the quickstart fills them."""
    lines = [line.strip() for line in notes.splitlines() if line.startswith("     ")]
    return [line.replace("NAME", "cpu-tiny").replace("=N", "=3") for line in lines]


def test_quickstart_lists_only_commands_the_test_runs_or_sets_aside() -> None:
    commands = quickstart_commands()
    assert commands, "no commands found in docs/quickstart.md"
    assert sorted(commands) == sorted([*RUN, *NOT_RUN])
    assert [c for c in commands if c in RUN] == RUN, "the test must run the commands in the page's order"
    # The page's markers agree: the blocks marked as run by this test hold exactly RUN, the others NOT_RUN.
    marked_run = [c for marker, block in quickstart_blocks() if marker == RUN_MARKER for c in block]
    assert marked_run == RUN
    marked_aside = [c for marker, block in quickstart_blocks() if marker.startswith("<!-- not run: ") for c in block]
    assert marked_aside == NOT_RUN


def test_quickstart(cluster: LocalCluster, trainingjob_crd: str, tmp_path: Path) -> None:
    """docs/quickstart.md, command by command, with the operator running as the chart's ServiceAccount."""
    with fresh_namespace(cluster, "quickstart") as jobs_ns:
        # The page runs `kubectl apply` in the context's namespace: a kubeconfig whose context is jobs_ns.
        config = yaml.safe_load(cluster.kubeconfig.read_text())
        config["contexts"][0]["context"]["namespace"] = jobs_ns
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(config))
        pending = iter(RUN)

        def run(command: str, *, cleanup: bool = False) -> str:
            if not cleanup:  # a failure half-way must not hide behind the order check of the clean-up
                assert command == next(pending), "run the quickstart's commands in RUN order"
            args = shlex.split(command)
            if args[:2] == ["helm", "install"]:
                args.append("--take-ownership")  # the session's CRD exists already (see the module docstring)
            env = {**os.environ, **cluster.env(), "KUBECONFIG": str(kubeconfig)}
            args[0] = str(cluster.bin_dir / args[0])
            proc = subprocess.run(
                args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
            )
            assert proc.returncode == 0, f"{command}:\n{proc.stdout}\n{proc.stderr}"
            return proc.stdout

        job = JobDriver(cluster, jobs_ns, base={}, name="cpu-tiny")
        finished = False
        notes = run(RUN[0])
        try:
            # NOTES.txt tells the user what comes next.
            assert "handles TrainingJobs in every namespace" in notes, notes
            assert "kubectl apply -f examples/cpu-tiny.yaml" in notes and "keeps the CRD and every TrainingJob" in notes
            # Every command NOTES.txt prints is one this test runs, in the same order (so the uninstall it
            # prints has its --namespace, without which it fails).
            printed = notes_commands(notes)
            assert printed and printed == [c for c in RUN if c in printed], printed
            assert RUN[-1] == printed[-1], printed
            run(RUN[1])
            with chart_operator(
                cluster, namespace="elastrain-system", release="elastrain", log=tmp_path / "op.log"
            ) as port:
                until(lambda: lease_holder(cluster, "elastrain-system"), what="the leader Lease")
                assert "elastrain-operator" in run(RUN[2])
                # What the chart's liveness probe asks (it allows a few misses while kopf takes the port over).
                assert until(lambda: _healthz(port), what="/healthz", timeout=30) == 200
                run("kubectl apply -f examples/cpu-tiny.yaml")
                job.wait_phase("Running", timeout=90)
                table = run("kubectl get tj cpu-tiny")
                # The columns and the phase the page says `kubectl get tj` shows.
                assert table.splitlines()[0].split() == ["NAME", "PHASE", "READY", "DESIRED", "STEP", "LOSS", "AGE"]
                assert table.splitlines()[1].split()[1] == "Running", table
                assert "WorkersReady" in run("kubectl describe tj cpu-tiny")
                pods = run("kubectl get pods -l elastrain.dev/job=cpu-tiny")
                assert {"cpu-tiny-head", "cpu-tiny-worker-0", "cpu-tiny-worker-1"} <= set(
                    re.findall(r"^(\S+)", pods, re.M)
                )
                assert_pods_admitted(cluster, jobs_ns)

                run("kubectl scale tj cpu-tiny --replicas=3")
                until(lambda: job.status().get("workers", {}).get("ready") == 3, what="3 ready workers", timeout=60)
                status = job.wait_phase("Running")
                # cpu-tiny is elastic, as the page says: it grew while training, never back to Pending.
                assert (status["resizes"][-1]["to"], status["resizes"][-1]["reason"]) == (3, "ScaledUp"), status
                entered = [e["message"].split(" -> ")[1].split(":")[0] for e in phase_events(job)]
                assert entered.count("Pending") == 1, entered  # only when the job was new
                run(RUN[8])
                job.wait_phase("Suspended")
                until(lambda: not job.live_pods(), what="no pods while suspended")
                run(RUN[9])
                job.wait_phase("Running", timeout=90)
                assert {"JobSuspended", "JobResumed"} <= {e["reason"] for e in job.events()}
                assert_pods_admitted(cluster, jobs_ns)
                run("kubectl delete tj cpu-tiny")
                assert job.get() is None
            finished = True
        finally:
            run("helm uninstall elastrain --namespace elastrain-system", cleanup=not finished)
            cluster.kubectl("delete", "namespace", "elastrain-system", "--wait=false", check=False)
        assert cluster.kubectl("get", "crd", CRD_NAME, check=False).returncode == 0


# -- namespaced RBAC -------------------------------------------------------------------------------


def test_namespaced_rbac_is_enough_and_no_more(cluster: LocalCluster, trainingjob_crd: str, tmp_path: Path) -> None:
    with (
        fresh_namespace(cluster, "chart-ns") as release_ns,
        fresh_namespace(cluster, "watched") as watched,
        fresh_namespace(cluster, "unwatched") as unwatched,
    ):
        release = "scoped"
        values = [
            "--set",
            "rbac.namespaced=true",
            "--set-json",
            f'watchNamespaces=["{watched}"]',
            "--set",
            "crds.enabled=false",
        ]
        helm(cluster, "install", release, str(CHART), "-n", release_ns, "--wait", *values)
        account = f"{release_ns}:{release}-elastrain"
        try:
            assert can_i(cluster, account, "create", "pods", "-n", watched)
            assert can_i(cluster, account, "list", "nodes")
            assert not can_i(cluster, account, "create", "pods", "-n", unwatched)
            assert not can_i(cluster, account, "list", "trainingjobs.elastrain.dev", "-n", unwatched)
            assert not can_i(cluster, account, "get", "secrets", "-n", watched)
            assert not can_i(cluster, account, "update", "leases", "-n", watched)
            assert deployment_env(cluster, release_ns, f"{release}-elastrain")["ELASTRAIN_NAMESPACES"] == watched

            job = JobDriver(cluster, watched, base=yaml.safe_load((REPO_ROOT / "examples/cpu-tiny.yaml").read_text()))
            job.name = "scoped"
            with chart_operator(cluster, namespace=release_ns, release=f"{release}-elastrain", log=tmp_path / "op.log"):
                job.create()
                job.wait_phase("Running", timeout=90)
                assert_pods_admitted(cluster, watched)
                assert lease_holder(cluster, release_ns), "the operator reconciled without holding the Lease"
        finally:
            helm(cluster, "uninstall", release, "-n", release_ns, "--wait")


def test_cluster_wide_rbac_refuses_what_the_operator_never_does(cluster: LocalCluster, trainingjob_crd: str) -> None:
    # The CRD must be served for kubectl to resolve trainingjobs.elastrain.dev (else every can-i says no).
    with fresh_namespace(cluster, "chart-cw") as release_ns:
        helm(
            cluster,
            "install",
            "wide",
            str(CHART),
            "-n",
            release_ns,
            "--set",
            "crds.enabled=false",
            "--set",
            "replicaCount=0",
        )
        account = f"{release_ns}:wide-elastrain"
        try:
            for allowed in [
                ("create", "pods", "-n", "default"),
                ("watch", "trainingjobs.elastrain.dev", "-A"),
                # (`can-i patch trainingjobs.elastrain.dev/status` would ask about a job *named* status.)
                ("patch", "trainingjobs.elastrain.dev", "--subresource=status", "-n", "default"),
                ("list", "nodes"),
                ("update", "leases/elastrain-operator", "-n", release_ns),
            ]:
                assert can_i(cluster, account, *allowed), allowed
            for refused in [
                ("get", "secrets", "-A"),
                ("delete", "nodes"),
                ("update", "pods", "-n", "default"),
                ("create", "trainingjobs.elastrain.dev", "-n", "default"),
                ("delete", "services", "-A"),
                ("update", "leases/other", "-n", release_ns),
                ("create", "leases", "-n", "default"),
                ("update", "customresourcedefinitions"),
                ("patch", "trainingjobs.elastrain.dev", "-n", "default"),  # kopf writes nothing to a job
                ("get", "nodes"),  # nodes are only listed
            ]:
                assert not can_i(cluster, account, *refused), refused
        finally:
            helm(cluster, "uninstall", "wide", "-n", release_ns)


# -- the chart's roles against what the operator really asks (the API server's audit log) ----------------


def chart_grants(manifest: str) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every rule of the release's ClusterRole and Roles (names ignored)."""
    return {
        (group, resource, verb)
        for obj in yaml.safe_load_all(manifest)
        if obj and obj["kind"] in ("ClusterRole", "Role")
        for rule in obj["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_charts_roles_grant_exactly_what_the_operator_uses(
    cluster: LocalCluster, trainingjob_crd: str, tmp_path: Path
) -> None:
    """A job's whole life under the chart's ServiceAccount: every request the API server logged for it was
    granted (no 403), and every permission the chart grants was used (so none can be dropped)."""
    with fresh_namespace(cluster, "audit") as release_ns, fresh_namespace(cluster, "audit-jobs") as jobs_ns:
        release = "audited"
        helm(cluster, "install", release, str(CHART), "-n", release_ns, "--set", "crds.enabled=false")
        try:
            granted = chart_grants(helm(cluster, "get", "manifest", release, "-n", release_ns))
            account = f"system:serviceaccount:{release_ns}:{release}-elastrain"
            base = yaml.safe_load((REPO_ROOT / "examples/cpu-tiny.yaml").read_text())
            job = JobDriver(cluster, jobs_ns, base=base, name="audited")
            with chart_operator(cluster, namespace=release_ns, release=f"{release}-elastrain", log=tmp_path / "op.log"):
                until(lambda: lease_holder(cluster, release_ns), what="the leader Lease")
                taken = lease_renewed(cluster, release_ns)
                job.create(runPolicy={"ttlSecondsAfterFinished": 0})
                job.wait_phase("Running", timeout=90)
                job.kubectl("scale", "tj", job.name, "--replicas=3")
                until(lambda: job.status().get("workers", {}).get("ready") == 3, what="3 ready workers", timeout=60)
                for suspend, phase in ((True, "Suspended"), (False, "Running")):
                    patch = json.dumps({"spec": {"runPolicy": {"suspend": suspend}}})
                    job.kubectl("patch", "tj", job.name, "--type", "merge", "-p", patch)
                    job.wait_phase(phase, timeout=90)
                job.finish_pod(job.live_name("head"), 0)  # the driver completes: Succeeded, then the TTL of 0
                until(lambda: job.get() is None, what="the finished job deleted by its TTL", timeout=60)
                # The leader renews its Lease every third of its duration: wait for one renewal.
                until(lambda: lease_renewed(cluster, release_ns) != taken, what="a Lease renewal", timeout=60)
            # The chart's operator watches every namespace: jobs other tests left in namespaces still being
            # deleted are refused (403, namespace terminating), which says nothing about the chart's roles.
            requests = [
                r for r in read_requests(cluster.audit_log, user=account) if r.namespace in ("", release_ns, jobs_ns)
            ]
        finally:
            helm(cluster, "uninstall", release, "-n", release_ns, "--wait")
    assert requests, f"no request of {account} in {cluster.audit_log}"
    refused = sorted({(r.verb, r.group, r.resource, r.code) for r in requests if r.code in (401, 403)})
    assert not refused, f"the operator asked for what the chart does not grant: {refused}"
    used = {(r.group, r.resource, r.verb) for r in requests}
    assert used - granted == set(), "used but not granted"
    assert granted - used == set(), "granted but never used: drop it from the chart's roles (and docs)"
