"""The operator against the real control plane: one behaviour per test, each able to fail.

The operator runs in-process under kopf's KopfRunner, watching the test's namespace. Pods sit on
KWOK's fake nodes (Running and Ready at once); a test makes a pod's trainer "exit" by patching
its status as a kubelet would.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from kopf.testing import KopfRunner
from prometheus_client.parser import text_string_to_metric_families

from elastrain_dev.cluster import LocalCluster
from elastrain_dev.jobdriver import JobDriver, printer_columns
from elastrain_dev.wait import until


def _env(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0]["env"]}


def test_creates_service_head_and_workers_owned_and_labelled(job: JobDriver) -> None:
    job.create()
    uid = until(lambda: (j := job.get()) and j["metadata"].get("uid"), what="job uid")
    pods = until(lambda: len(p := job.pods()) == 3 and p, what="3 pods")
    assert set(pods) == {"job-head", "job-worker-0", "job-worker-1"}
    for name, pod in pods.items():
        (owner,) = pod["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("TrainingJob", "job", uid, True)
        labels = pod["metadata"]["labels"]
        assert labels["elastrain.dev/job"] == "job"
        assert labels["elastrain.dev/role"] == ("head" if name == "job-head" else "worker")
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert pod["spec"]["automountServiceAccountToken"] is False
    worker = pods["job-worker-1"]
    assert worker["metadata"]["labels"]["elastrain.dev/index"] == "1"
    assert worker["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    env = _env(worker)
    assert env["ELASTRAIN_HEAD_ADDRESS"] == f"job-head.{job.namespace}.svc"
    assert env["ELASTRAIN_WORKER_INDEX"] == "1"
    assert (env["ELASTRAIN_MIN_WORKERS"], env["ELASTRAIN_MAX_WORKERS"]) == ("2", "2")
    assert json.loads(env["ELASTRAIN_TRAINER_CONFIG"])["steps"] == 50
    assert "nvidia.com/gpu" not in json.dumps(pods["job-head"]["spec"]["containers"][0]["resources"])
    service = json.loads(job.kubectl("get", "service", "job-head", "-o", "json").stdout)
    assert service["spec"]["clusterIP"] == "None"
    assert service["metadata"]["ownerReferences"][0]["uid"] == uid
    # Ray and torchft ports admit only the job's own pods (and the operator to the progress port).
    policy = json.loads(job.kubectl("get", "networkpolicy", "job-isolation", "-o", "json").stdout)
    assert policy["metadata"]["ownerReferences"][0]["uid"] == uid
    assert policy["spec"]["podSelector"] == {"matchLabels": {"elastrain.dev/job": "job"}}
    peers = [rule["from"][0] for rule in policy["spec"]["ingress"]]
    assert peers[0] == {"podSelector": {"matchLabels": {"elastrain.dev/job": "job"}}}
    assert policy["spec"]["ingress"][1]["ports"] == [{"protocol": "TCP", "port": 8765}]
    # Evictions (kubectl drain) take workers down to the minimum only: replicas (2) without spec.elastic.
    budget = json.loads(job.kubectl("get", "poddisruptionbudget", "job-workers", "-o", "json").stdout)
    assert budget["metadata"]["ownerReferences"][0]["uid"] == uid
    assert budget["spec"]["minAvailable"] == 2
    assert budget["spec"]["selector"] == {"matchLabels": {"elastrain.dev/job": "job", "elastrain.dev/role": "worker"}}
    # Ray's token authentication, with a token of the job's own.
    secret = json.loads(job.kubectl("get", "secret", "job-ray-auth", "-o", "json").stdout)
    assert secret["metadata"]["ownerReferences"][0]["uid"] == uid
    assert len(secret["data"]["token"]) >= 40
    worker_env = {e["name"]: e for e in worker["spec"]["containers"][0]["env"]}
    assert worker_env["RAY_AUTH_MODE"]["value"] == "token"
    assert worker_env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "job-ray-auth", "key": "token"}
    # Every pod is placed, the workers on fake GPU nodes.
    placed = until(
        lambda: all((p := job.pods()).get(n, {}).get("spec", {}).get("nodeName") for n in pods) and p,
        what="all pods scheduled",
    )
    assert all(placed[n]["spec"]["nodeName"].startswith("gpu-node-") for n in ("job-worker-0", "job-worker-1"))


def test_status_and_printer_columns(job: JobDriver) -> None:
    job.create()
    status = job.wait_phase("Running")
    assert status["workers"] == {"desired": 2, "ready": 2, "min": 2, "max": 2, "worldSize": 4}
    assert status["selector"] == "elastrain.dev/job=job,elastrain.dev/role=worker"
    assert status["startTime"]
    running = next(c for c in status["conditions"] if c["type"] == "Running")
    assert (running["status"], running["reason"]) == ("True", "WorkersReady")
    columns = printer_columns(job.kubectl("get", "tj", "job", "-o", "wide").stdout)
    assert (columns["PHASE"], columns["READY"], columns["DESIRED"], columns["WORLD"]) == ("Running", "2", "2", "4")
    assert columns["STEP"] == "0"
    assert columns["NAME"] == "job"


def test_transitions_are_recorded_as_events(job: JobDriver) -> None:
    job.create()
    job.wait_phase("Running")
    events = until(
        lambda: (e := job.events()) and any(x["reason"] == "WorkersReady" for x in e) and e, what="WorkersReady event"
    )
    reasons = [e["reason"] for e in events]
    assert "JobCreated" in reasons
    describe = job.kubectl("describe", "tj", "job").stdout
    assert "WorkersReady" in describe and "Pending -> Running" in describe


def test_head_success_marks_job_succeeded_and_removes_workers(job: JobDriver) -> None:
    job.create()
    job.wait_phase("Running")
    job.finish_pod("job-head", 0)
    status = job.wait_phase("Succeeded")
    assert status["completionTime"]
    until(lambda: not {"job-worker-0", "job-worker-1"} & job.live_pods(), what="workers removed")
    succeeded = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert succeeded["reason"] == "JobSucceeded"


def test_application_failures_count_against_backoff_limit(job: JobDriver) -> None:
    job.create(runPolicy={"backoffLimit": 1, "restartPolicy": "OnFailure"})
    job.wait_phase("Running")
    first = job.running("worker", 0)
    job.finish_pod(first["metadata"]["name"], 1)
    # The failed worker is replaced under a name of its own, and the failure counted.
    replacement = job.running("worker", 0, not_uid=first["metadata"]["uid"])
    assert replacement["metadata"]["name"] == "job-worker-0-r1"
    until(lambda: job.status().get("restarts", {}).get("application") == 1, what="one application restart")
    job.wait_phase("Running")
    job.finish_pod(job.live_name("worker", 1), 2)
    status = job.wait_phase("Failed")
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert "backoffLimit 1" in failed["message"]
    assert status["restarts"]["application"] == 2


def test_exit_code_policy_fails_at_once_on_an_application_error(job: JobDriver) -> None:
    job.create()  # restartPolicy ExitCode by default
    job.wait_phase("Running")
    job.finish_pod("job-worker-1", 3)
    status = job.wait_phase("Failed")
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "ApplicationError" and "exit code 3" in failed["message"]


@pytest.mark.parametrize(("exit_code", "reason"), [(137, "Error"), (1, "Evicted")])
def test_infrastructure_failures_never_count(job: JobDriver, exit_code: int, reason: str) -> None:
    job.create()
    job.wait_phase("Running")
    before = job.running("worker", 0)
    job.finish_pod(before["metadata"]["name"], exit_code, reason=reason)
    job.running("worker", 0, not_uid=before["metadata"]["uid"])
    status = job.wait_phase("Running")
    assert status.get("restarts", {}).get("application", 0) == 0
    events = job.events()
    assert any(e["reason"] == "WorkerLost" and "infrastructure" in e["message"] for e in events)


def test_head_failure_restarts_the_ray_cluster(job: JobDriver) -> None:
    job.create(runPolicy={"restartPolicy": "OnFailure", "backoffLimit": 3})
    job.wait_phase("Running")
    uids = {key: pod["metadata"]["uid"] for key, pod in job.live().items()}
    job.finish_pod(job.live_name("head"), 1)
    for (role, index), uid in uids.items():
        job.running(role, index, not_uid=uid)
    status = job.wait_phase("Running")
    assert status["restarts"]["application"] == 1
    assert set(job.live()) == set(uids)


def test_active_deadline_fails_the_job(job: JobDriver) -> None:
    job.create(runPolicy={"activeDeadlineSeconds": 3})
    status = job.wait_phase("Failed", timeout=30)
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "DeadlineExceeded"
    until(lambda: not job.live_pods(), what="pods removed")


def test_ttl_deletes_the_finished_job_and_its_pods(job: JobDriver) -> None:
    job.create(runPolicy={"ttlSecondsAfterFinished": 2})
    job.wait_phase("Running")
    job.finish_pod("job-head", 0)
    job.wait_phase("Succeeded")
    until(lambda: job.get() is None, what="job deleted after its TTL", timeout=30)
    until(lambda: not job.pods(), what="pods garbage-collected", timeout=60)


def test_suspend_deletes_pods_and_resume_recreates_them(job: JobDriver) -> None:
    job.create()
    job.wait_phase("Running")
    job.kubectl("patch", "tj", "job", "--type=merge", "-p", '{"spec": {"runPolicy": {"suspend": true}}}')
    status = job.wait_phase("Suspended")
    assert "startTime" not in status
    until(lambda: not job.live_pods(), what="pods deleted on suspend")
    suspended = next(c for c in status["conditions"] if c["type"] == "Suspended")
    assert suspended["status"] == "True"
    job.kubectl("patch", "tj", "job", "--type=merge", "-p", '{"spec": {"runPolicy": {"suspend": false}}}')
    status = job.wait_phase("Running")
    assert status["startTime"]
    assert set(job.live()) == {("head", 0), ("worker", 0), ("worker", 1)}


def test_deleting_the_job_leaves_nothing_behind(job: JobDriver) -> None:
    job.create()
    job.wait_phase("Running")
    job.kubectl("delete", "tj", "job", "--wait=true", "--timeout=60s")
    until(lambda: not job.pods(), what="pods gone", timeout=60)
    until(
        lambda: (
            not json.loads(
                job.kubectl("get", "services,networkpolicies", "-l", "elastrain.dev/job=job", "-o", "json").stdout
            )["items"]
        ),
        what="service and network policy gone",
        timeout=60,
    )


def test_kubectl_scale_adds_and_removes_workers(job: JobDriver) -> None:
    job.create(replicas=2, elastic={"minReplicas": 1, "maxReplicas": 4})
    job.wait_phase("Running")
    job.kubectl("scale", "tj", "job", "--replicas=4")
    until(lambda: job.status().get("workers", {}).get("ready") == 4, what="4 workers ready")
    assert {"job-worker-2", "job-worker-3"} <= job.live_pods()
    job.kubectl("scale", "tj", "job", "--replicas=1")
    until(lambda: set(job.live()) == {("head", 0), ("worker", 0)}, what="scaled down to one worker")
    # The round that sees one worker ready writes the ScaledDown record; the pods go first.
    status = until(
        lambda: (s := job.status()).get("phase") == "Running" and s.get("workers", {}).get("ready") == 1 and s,
        what="status: Running with one ready worker",
    )
    resizes = [(r["from"], r["to"], r["reason"]) for r in status["resizes"]]
    # Growing may take more than one round (2 -> 3 -> 4); shrinking is one round.
    assert resizes[0][0] == 2 and resizes[-1] == (4, 1, "ScaledDown"), resizes
    assert all(reason == "ScaledUp" for _, _, reason in resizes[:-1]) and resizes[-2][1] == 4, resizes
    proc = job.kubectl("scale", "tj", "job", "--replicas=5", check=False)
    assert proc.returncode != 0 and "replicas" in proc.stderr


def test_spec_the_server_rejects_fails_the_job_with_invalid_spec(job: JobDriver) -> None:
    # affinity is copied verbatim (preserve-unknown-fields), so only pod creation can find this mistake.
    bad_affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Sideways"}]}]
            }
        }
    }
    job.create(scheduling={"affinity": bad_affinity})
    status = job.wait_phase("Failed")
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "InvalidSpec"
    assert "Sideways" in failed["message"] and "spec.scheduling" in failed["message"]
    # The server's own sentence (its Status message), not the raw JSON of its answer.
    assert '"kind":"Status"' not in failed["message"] and "is invalid" in failed["message"], failed["message"]
    until(
        lambda: any(e["reason"] == "InvalidSpec" and e["type"] == "Warning" for e in job.events()),
        what="InvalidSpec event",
    )


def test_operator_restarted_mid_creation_creates_no_duplicates(
    idle_job: JobDriver, namespace: str, operator_env: dict[str, str]
) -> None:
    job = idle_job
    args = ["run", "--standalone", f"--namespace={namespace}", "-m", "elastrain_operator.handlers.jobs"]
    job.create(replicas=3)
    with KopfRunner(args, timeout=60):
        until(job.pods, what="the first pods", interval=0.05)
    # Stopped part-way (or not): a second operator converges to the same set, never more.
    with KopfRunner(args, timeout=60):
        job.wait_phase("Running")
        pods = job.pods()
    assert sorted(pods) == ["job-head", "job-worker-0", "job-worker-1", "job-worker-2"]


def test_metrics_endpoint_serves_the_counters(job: JobDriver, operator_env: dict[str, str]) -> None:
    job.create()
    job.wait_phase("Running")
    port = operator_env["ELASTRAIN_METRICS_PORT"]

    def samples() -> dict[tuple[str, str], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        found: dict[tuple[str, str], float] = {}
        for family in text_string_to_metric_families(text):
            found[("family", family.name)] = 1.0
            for sample in family.samples:
                found[(sample.name, ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items())))] = sample.value
        return found

    seen = until(lambda: (s := samples()).get(("elastrain_jobs", "phase=Running"), 0) >= 1 and s, what="metrics")
    assert seen[("elastrain_pods_created_total", "role=worker")] >= 2
    assert seen[("elastrain_pods_created_total", "role=head")] >= 1
    assert seen[("elastrain_reconcile_duration_seconds_count", "")] > 0
    # Declared even before the first error, so dashboards and alerts can rely on it.
    assert ("family", "elastrain_handler_errors") in seen


def test_operator_carries_on_after_the_api_server_restarts(job: JobDriver, cluster: LocalCluster) -> None:
    job.create(replicas=2, elastic={"minReplicas": 1, "maxReplicas": 3})
    job.wait_phase("Running")
    cluster.restart_apiserver(downtime=3)
    # The operator's watches and its API client reconnect: a change made after the restart is acted on.
    # (Only the operator's part is asserted: KWOK and the scheduler reconnect at their own pace.)
    job.kubectl("scale", "tj", "job", "--replicas=3")
    until(lambda: ("worker", 2) in job.live(), what="worker 2 created after the restart", timeout=90)
    until(lambda: job.status().get("workers", {}).get("desired") == 3, what="status written after the restart")
    assert set(job.live()) == {("head", 0), ("worker", 0), ("worker", 1), ("worker", 2)}
