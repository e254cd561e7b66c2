"""Elasticity on the real control plane: fake GPU nodes fail, vanish and return under a running job.

Each test owns a pool of fake nodes (labelled with its namespace) so that "no node is free" is a
fact the test controls: every worker asks for all 8 GPUs of a node and selects the pool. The pool's
nodes are tainted and only the workers tolerate it, so the head (which asks for no GPU and does not
select the pool) never shares a node with a worker: a failed worker node never takes the head along
(which restarts the whole job, a different test).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kopf.testing import KopfRunner
from prometheus_client.parser import text_string_to_metric_families

from elastrain_dev import nodes
from elastrain_dev.cluster import LocalCluster
from elastrain_dev.jobdriver import JobDriver
from elastrain_dev.wait import until

POOL_LABEL = "elastrain.dev/test-pool"
REDUCED = ("elastrain_reduced_size_seconds_total", "")


class Pool:
    """Fake 8-GPU nodes only this test's workers select; failed nodes are restored at the end."""

    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.names: list[str] = []
        self.failed: set[str] = set()

    def add(self, count: int) -> list[str]:
        added = nodes.add_nodes(
            self.cluster, count=count, gpus=8, prefix=f"{self.namespace}-n", labels={POOL_LABEL: self.namespace}
        )
        for name in added:
            self.cluster.kubectl("taint", "node", name, f"{POOL_LABEL}={self.namespace}:NoSchedule")
            self.cluster.kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=60s")
        self.names += added
        return added

    def fail(self, name: str) -> None:
        nodes.fail_node(self.cluster, name)
        self.failed.add(name)

    def node_of(self, pod: dict[str, Any]) -> str:
        return str(pod["spec"]["nodeName"])


@pytest.fixture
def pool(cluster: LocalCluster, namespace: str) -> Iterator[Pool]:
    pool = Pool(cluster, namespace)
    yield pool
    for name in pool.failed - set(pool.names):
        nodes.restore_node(cluster, name)  # a shared node this test failed
    for name in pool.names:
        cluster.kubectl("delete", "node", name, "--wait=false", check=False)


def _elastic(pool: Pool, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": 3,
        "acceleratorsPerWorker": 8,
        "elastic": {"minReplicas": 2, "maxReplicas": 3},
        "scheduling": {
            "nodeSelector": {POOL_LABEL: pool.namespace},
            "tolerations": [{"key": POOL_LABEL, "operator": "Equal", "value": pool.namespace, "effect": "NoSchedule"}],
        },
    }
    spec.update(extra)
    return spec


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def _ready(job: JobDriver, count: int, timeout: float = 60) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status = job.status()
        return status if status.get("workers", {}).get("ready") == count and status.get("phase") == "Running" else None

    return until(probe, what=f"Running with {count} ready workers", timeout=timeout)


def _start(job: JobDriver, pool: Pool) -> int:
    """Create the elastic job on three fresh nodes; how many resizes its start recorded.

    A worker that turns ready a round after the first two is a real ``(2, 3)`` ScaledUp (the job
    trains from two), so what a test then does is counted from this baseline on.
    """
    pool.add(3)
    job.create(**_elastic(pool))
    return len(_ready(job, 3).get("resizes") or [])


def _lose_a_worker_and_grow_back(job: JobDriver, pool: Pool, lose: str, started: int) -> None:
    victim = job.running("worker", 1)
    node = pool.node_of(victim)
    if lose == "fail":
        pool.fail(node)
    else:
        nodes.delete_node(job.cluster, node)

    # The job goes on at 2 workers; the replacement waits for capacity, and says why.
    def blocked() -> dict[str, Any] | None:
        status = job.status()
        return status if _condition(status, "ScaleUpBlocked").get("status") == "True" else None

    status = until(blocked, what="ScaleUpBlocked", timeout=60)
    assert _condition(status, "ScaleUpBlocked")["reason"] == "Unschedulable"
    assert "nvidia.com/gpu" in _condition(status, "ScaleUpBlocked")["message"]
    status = _ready(job, 2)
    replacement = job.live()[("worker", 1)]
    assert replacement["metadata"]["name"] == "job-worker-1-r1"
    assert replacement["status"]["phase"] == "Pending"
    lost = [e for e in job.events() if e["reason"] == "WorkerLost"]
    assert lost and victim["metadata"]["name"] in lost[0]["message"] and node in lost[0]["message"]

    # Capacity returns: the replacement runs, the job is back at 3, the condition clears.
    pool.add(1)
    status = _ready(job, 3)
    assert _condition(status, "ScaleUpBlocked")["status"] == "False"
    resizes = [(r["from"], r["to"], r["reason"]) for r in status["resizes"][started:]]
    assert resizes == [(3, 2, "WorkerLost"), (2, 3, "ScaledUp")]
    assert status.get("restarts", {}).get("application", 0) == 0
    assert len(job.live()) == 4  # head + 3 workers, no duplicates


def _metrics(port: str) -> dict[tuple[str, str], float]:
    def scrape() -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                return str(resp.read().decode())
        except OSError:
            return None  # the operator is still starting

    text = until(scrape, what="the operator's /metrics", timeout=60)
    return {
        (sample.name, ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_node_failure_shrinks_the_job_and_capacity_grows_it_back(
    job: JobDriver, pool: Pool, operator_env: dict[str, str]
) -> None:
    port = operator_env["ELASTRAIN_METRICS_PORT"]
    started = _start(job, pool)
    before = _metrics(port)
    _lose_a_worker_and_grow_back(job, pool, lose="fail", started=started)
    expected = {
        ("elastrain_workers_lost_total", ""): 1,
        ("elastrain_replacements_total", "role=worker"): 1,
        ("elastrain_resizes_total", "reason=WorkerLost"): 1,
        ("elastrain_resizes_total", "reason=ScaledUp"): 1,
        ("elastrain_loss_to_replacement_seconds_count", ""): 1,
    }

    def grown() -> dict[tuple[str, str], float]:
        after = _metrics(port)
        return {key: after.get(key, 0.0) - before.get(key, 0.0) for key in [*expected, REDUCED]}

    # Metrics are counted just after the status write a test sees: give the operator that moment.
    until(lambda: all(grown()[key] >= value for key, value in expected.items()), what="the metrics", timeout=15)
    final = grown()
    assert {key: final[key] for key in expected} == expected, [e["message"] for e in job.events()]
    assert final[REDUCED] > 0


def test_node_deletion_shrinks_the_job_and_capacity_grows_it_back(job: JobDriver, pool: Pool) -> None:
    _lose_a_worker_and_grow_back(job, pool, lose="delete", started=_start(job, pool))


def test_below_min_replicas_the_job_waits_instead_of_failing(job: JobDriver, pool: Pool) -> None:
    pool.add(3)
    job.create(**_elastic(pool, elastic={"minReplicas": 2, "maxReplicas": 3, "belowMinGraceSeconds": 0}))
    _ready(job, 3)
    for index in (0, 1):
        pool.fail(pool.node_of(job.running("worker", index)))
    status = job.wait_phase("Pending", timeout=60)
    running = _condition(status, "Running")
    assert (running["status"], running["reason"]) == ("False", "BelowMinReplicas")
    assert "fewer than the 2 needed" in running["message"]
    assert _condition(status, "Failed") == {}
    # Capacity returns: the job trains again.
    pool.add(2)
    _ready(job, 3)


def test_losing_the_head_node_recreates_the_head(job: JobDriver, pool: Pool) -> None:
    pool.add(3)
    job.create(**_elastic(pool))
    _ready(job, 3)
    head = job.running("head")
    pool.fail(pool.node_of(head))
    new_head = job.running("head", not_uid=head["metadata"]["uid"])
    assert new_head["metadata"]["name"] == "job-head-r1"
    assert any(e["reason"] == "NodeLost" and head["metadata"]["name"] in e["message"] for e in job.events())
    status = until(
        lambda: (s := job.status()).get("restarts", {}).get("infrastructure", 0) >= 1 and s,
        what="an infrastructure restart counted",
    )
    assert status["restarts"].get("application", 0) == 0


def test_operator_restarted_mid_resize_converges_without_duplicates(
    idle_job: JobDriver, pool: Pool, namespace: str, operator_env: dict[str, str]
) -> None:
    job = idle_job
    args = ["run", "--standalone", f"--namespace={namespace}", "-m", "elastrain_operator.handlers.jobs"]
    pool.add(3)
    job.create(**_elastic(pool))
    with KopfRunner(args, timeout=60):
        started = len(_ready(job, 3).get("resizes") or [])
        pool.fail(pool.node_of(job.running("worker", 2)))
        until(lambda: any(e["reason"] == "WorkerLost" for e in job.events()), what="the loss noticed")
    # The operator is gone in the middle of the resize; a new one takes over.
    with KopfRunner(args, timeout=60):
        pool.add(1)
        status = _ready(job, 3)
    live = job.live()
    assert sorted(live) == [("head", 0), ("worker", 0), ("worker", 1), ("worker", 2)]
    workers_2 = [p for p in job.pods().values() if p["metadata"]["labels"]["elastrain.dev/index"] == "2"]
    assert sorted(p["metadata"]["name"] for p in workers_2) == ["job-worker-2", "job-worker-2-r1"]
    assert [(r["from"], r["to"]) for r in status["resizes"][started:]] == [(3, 2), (2, 3)]
