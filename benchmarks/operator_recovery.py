"""How fast the operator replaces lost workers and brings jobs up, and what it costs.

    make bench BENCH=operator_recovery [ARGS='--runs 5 --jobs 50 --nodes 100']

On a fresh local control plane with --nodes extra fake 8-GPU nodes, the real `elastrain-operator`
process (leader election on) runs and we measure:
  apply_1        kubectl apply of one 8-worker job -> every pod Running
  fail_to_new    node failed (heartbeat stopped) -> replacement pod created   (--runs times)
  notready_to_new  node seen NotReady -> replacement pod created             (same runs)
  apply_N        kubectl apply of --jobs 8-worker jobs at once -> every pod Running
  requests/job   Kubernetes API requests the operator made for one job's life (create -> Running -> delete)
  rss_mb         operator resident memory with --jobs jobs running
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

from elastrain_dev import nodes
from elastrain_dev.cluster import CACHE_ROOT, LocalCluster
from elastrain_dev.wait import until
from operator_process import api_requests, prepare_namespace, rss_mb, running_operator
from report import print_table, summarise, write_json

NAMESPACE = "bench"
POOL = "elastrain.dev/bench-pool"


def job_manifest(name: str, workers: int, gpus: int) -> dict[str, Any]:
    return {
        "apiVersion": "elastrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "image": "elastrain-trainer:bench",
            "replicas": workers,
            "elastic": {"minReplicas": 1, "maxReplicas": workers},
            "acceleratorsPerWorker": gpus,
            "scheduling": {"nodeSelector": {POOL: "yes"}},
            "trainer": {"steps": 100, "globalBatchSize": 64, "data": {"numShards": 16}},
        },
    }


def pods(cluster: LocalCluster, selector: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json", timeout=300).stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def all_running(cluster: LocalCluster, selector: str, expected: int) -> bool:
    found = [p for p in pods(cluster, selector) if "deletionTimestamp" not in p["metadata"]]
    return len(found) == expected and all(p["status"].get("phase") == "Running" for p in found)


def timed(what: str, probe: Any, timeout: float, interval: float = 0.1) -> float:
    start = time.monotonic()
    until(probe, what=what, timeout=timeout, interval=interval)
    return time.monotonic() - start


def recovery_run(cluster: LocalCluster, index: int) -> tuple[float, float]:
    """Fail the node of one worker of job `one`; return (fail -> replacement, NotReady -> replacement)."""
    victim = next(
        p
        for p in pods(cluster, "elastrain.dev/job=one,elastrain.dev/role=worker")
        if "deletionTimestamp" not in p["metadata"]
    )
    node, worker = victim["spec"]["nodeName"], victim["metadata"]["labels"]["elastrain.dev/index"]
    selector = f"elastrain.dev/job=one,elastrain.dev/index={worker},elastrain.dev/role=worker"
    before = {p["metadata"]["uid"] for p in pods(cluster, selector)}
    start = time.monotonic()
    nodes.fail_node(cluster, node)
    notready_at: list[float] = []

    def replaced() -> bool:
        if not notready_at:
            ready = cluster.kubectl(
                "get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
            ).stdout
            if ready != "True":
                notready_at.append(time.monotonic())
        return any(p["metadata"]["uid"] not in before for p in pods(cluster, selector))

    until(replaced, what=f"replacement of worker {worker}", timeout=120, interval=0.1)
    created = time.monotonic()
    nodes.restore_node(cluster, node)
    until(lambda: all_running(cluster, "elastrain.dev/job=one", 9), what="job one whole again", timeout=120)
    seen = notready_at[0] if notready_at else created
    print(
        f"  recovery {index + 1}: fail->replacement {created - start:.1f} s, "
        f"NotReady->replacement {created - seen:.2f} s",
        flush=True,
    )
    return created - start, created - seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="node failures to time")
    parser.add_argument("--jobs", type=int, default=50, help="jobs applied at once")
    parser.add_argument("--nodes", type=int, default=100, help="fake 8-GPU nodes in the pool")
    args = parser.parse_args()

    cluster = LocalCluster(CACHE_ROOT / "clusters" / f"bench-recovery-{os.getpid()}")
    try:
        nodes.bring_up(cluster, nodes=4, gpus=8)
        nodes.add_nodes(cluster, count=args.nodes, gpus=8, prefix="pool-", labels={POOL: "yes"})
        nodes.wait_nodes_ready(cluster, timeout_seconds=300)
        prepare_namespace(cluster, NAMESPACE)
        with running_operator(cluster, {"ELASTRAIN_LEASE_NAMESPACE": NAMESPACE}) as (operator, port):
            # One job, created and brought up.
            requests_before = api_requests(port)
            cluster.kubectl("apply", "-f", "-", input=json.dumps(job_manifest("one", 8, 2)))
            apply_1 = timed("job one Running", lambda: all_running(cluster, "elastrain.dev/job=one", 9), 120)
            print(f"  apply_1: {apply_1:.1f} s", flush=True)

            # Node failures under it.
            runs = [recovery_run(cluster, i) for i in range(args.runs)]
            cluster.kubectl("delete", "tj", "one", "-n", NAMESPACE, "--wait=true", "--timeout=120s")
            until(lambda: not pods(cluster, "elastrain.dev/job=one"), what="job one gone", timeout=120)
            requests_per_job = api_requests(port) - requests_before

            # Many jobs at once.
            items = [job_manifest(f"many-{i}", 8, 2) for i in range(args.jobs)]
            start = time.monotonic()
            cluster.kubectl(
                "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}), timeout=300
            )
            expected = args.jobs * 9
            apply_n = timed(
                f"{args.jobs} jobs Running",
                lambda: all_running(cluster, "elastrain.dev/job", expected),
                900,
                interval=1.0,
            )
            apply_n = time.monotonic() - start
            memory = rss_mb(operator.pid)
            print(f"  apply_{args.jobs}: {apply_n:.1f} s, operator RSS {memory:.0f} MB", flush=True)
    finally:
        cluster.down()

    fail_to_new = summarise([r[0] for r in runs])
    notready_to_new = summarise([r[1] for r in runs])
    p95 = {
        name: statistics.quantiles(vals, n=20)[-1] if len(vals) > 1 else vals[0]
        for name, vals in (("fail_to_new", [r[0] for r in runs]), ("notready_to_new", [r[1] for r in runs]))
    }
    rows = [
        ["apply_1 (9 pods Running)", apply_1, "", "", "", 1],
        ["fail_to_new", fail_to_new["median"], p95["fail_to_new"], fail_to_new["min"], fail_to_new["max"], len(runs)],
        [
            "notready_to_new",
            notready_to_new["median"],
            p95["notready_to_new"],
            notready_to_new["min"],
            notready_to_new["max"],
            len(runs),
        ],
        [f"apply_{args.jobs} ({expected} pods Running)", apply_n, "", "", "", 1],
        ["api requests per job life", requests_per_job, "", "", "", 1],
        [f"operator RSS with {args.jobs} jobs (MB)", memory, "", "", "", 1],
    ]
    print_table(
        f"operator recovery ({args.nodes + 4} fake nodes; seconds unless stated)",
        ["measure", "median", "p95", "min", "max", "n"],
        rows,
    )
    path = write_json(
        "operator_recovery",
        {
            "nodes": args.nodes + 4,
            "jobs": args.jobs,
            "apply_1_s": apply_1,
            "apply_n_s": apply_n,
            "fail_to_replacement_s": fail_to_new,
            "notready_to_replacement_s": notready_to_new,
            "p95": p95,
            "api_requests_per_job": requests_per_job,
            "operator_rss_mb": memory,
            "runs": runs,
        },
    )
    print(f"json: {path}")
    print(
        f"summary: fail->replacement median {fail_to_new['median']:.1f}s (p95 {p95['fail_to_new']:.1f}s), "
        f"NotReady->replacement {notready_to_new['median']:.2f}s, apply 1 job {apply_1:.1f}s, "
        f"{args.jobs} jobs {apply_n:.1f}s, {requests_per_job:.0f} requests/job, RSS {memory:.0f} MB"
    )


if __name__ == "__main__":
    main()
