"""The operator at cluster scale: many jobs of 1 head + 8 workers at once, and what they cost at rest.

    make bench BENCH=operator_scale [ARGS='--jobs 10 100 --runs 3']

For each --jobs count, on a fresh local control plane with one fake 8-GPU node per job (plus 4),
the real `elastrain-operator` process runs and we measure:
  fanout_p50/p99   per job: kubectl apply of all jobs at once -> that job's 9 pods exist (seen by a watch)
  all_pods         apply -> every pod of every job exists
  steady_rps       the operator's API requests per second with every job Running and nothing changing
  rss_mb, cpu_s    operator resident memory then, and CPU seconds used from start to then
  notready_to_new  a node seen NotReady -> its worker's replacement pod seen (watches; --runs times)
Goals (issue 22): steady_rps near 0, RSS < 300 MB at 1000 jobs, 1-job fan-out < 0.8 s,
NotReady -> replacement < 0.25 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from elastrain_dev import nodes
from elastrain_dev.cluster import CACHE_ROOT, LocalCluster
from elastrain_dev.wait import until
from operator_process import api_requests, prepare_namespace, rss_mb, running_operator
from report import print_table, write_json

NAMESPACE = "scale"
POOL = "elastrain.dev/scale-pool"
WORKERS = 8


def job_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "elastrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "image": "elastrain-trainer:bench",
            "replicas": WORKERS,
            "elastic": {"minReplicas": 1, "maxReplicas": WORKERS},
            "acceleratorsPerWorker": 1,
            "scheduling": {"nodeSelector": {POOL: "yes"}},
            "trainer": {"steps": 100, "globalBatchSize": 64, "data": {"numShards": 16}},
        },
    }


class Seen:
    """When this process first saw each pod and each node's Ready flip, from watches (not kubectl polls).

    Polling kubectl on a loaded machine takes seconds per call; a watch stamps events within
    milliseconds of the API server sending them.
    """

    def __init__(self, cluster: LocalCluster) -> None:
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
        self.core = client.CoreV1Api(client.ApiClient(configuration))
        self.pods: dict[str, tuple[float, str]] = {}
        """pod uid -> (first seen, job name)."""
        self.not_ready: dict[str, float] = {}
        """node -> when it was first seen not Ready (cleared when Ready again)."""
        self.lock = threading.Lock()
        for target in (self._watch_pods, self._watch_nodes):
            threading.Thread(target=target, daemon=True).start()

    def _stream(self, func: Any, **kw: Any) -> Iterator[dict[str, Any]]:
        while True:
            try:
                yield from watch.Watch().stream(func, timeout_seconds=3600, **kw)  # type: ignore[no-untyped-call]
            except Exception:
                time.sleep(0.2)

    def _watch_pods(self) -> None:
        for event in self._stream(
            self.core.list_namespaced_pod, namespace=NAMESPACE, label_selector="elastrain.dev/job"
        ):
            meta = event["raw_object"]["metadata"]
            with self.lock:
                self.pods.setdefault(meta["uid"], (time.monotonic(), meta["labels"]["elastrain.dev/job"]))

    def _watch_nodes(self) -> None:
        for event in self._stream(self.core.list_node):
            node = event["raw_object"]
            ready = [c for c in node["status"].get("conditions") or [] if c["type"] == "Ready"]
            with self.lock:
                if ready and ready[0]["status"] != "True":
                    self.not_ready.setdefault(node["metadata"]["name"], time.monotonic())
                else:
                    self.not_ready.pop(node["metadata"]["name"], None)

    def first_seen_by_job(self) -> dict[str, list[float]]:
        with self.lock:
            out: dict[str, list[float]] = {}
            for seen, job in self.pods.values():
                out.setdefault(job, []).append(seen)
            return out


def all_pods(cluster: LocalCluster) -> list[dict[str, Any]]:
    out = cluster.kubectl(
        "get", "pods", "-n", NAMESPACE, "-l", "elastrain.dev/job", "-o", "json", "--chunk-size=0", timeout=300
    ).stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return [p for p in items if "deletionTimestamp" not in p["metadata"]]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def replacement(cluster: LocalCluster, seen: Seen) -> float:
    """Fail the node of one worker of job j-0; seconds from the node seen NotReady to its replacement seen."""
    victim = next(
        p
        for p in all_pods(cluster)
        if p["metadata"]["labels"].get("elastrain.dev/job") == "j-0"
        and p["metadata"]["labels"].get("elastrain.dev/role") == "worker"
    )
    node = victim["spec"]["nodeName"]
    index = victim["metadata"]["labels"]["elastrain.dev/index"]
    with seen.lock:
        known = set(seen.pods)
    nodes.fail_node(cluster, node)

    def replaced() -> float | None:
        with seen.lock:
            new = [t for uid, (t, job) in seen.pods.items() if uid not in known and job == "j-0"]
            lost_at = seen.not_ready.get(node)
        return min(new) - lost_at if new and lost_at is not None else None

    latency = until(replaced, what=f"replacement of worker {index}", timeout=120, interval=0.05)
    nodes.restore_node(cluster, node)
    return latency


def run(jobs: int, runs: int, steady_seconds: float) -> dict[str, Any]:
    cluster = LocalCluster(CACHE_ROOT / "clusters" / f"bench-scale-{os.getpid()}-{jobs}")
    try:
        nodes.bring_up(cluster, nodes=4, gpus=8)
        nodes.add_nodes(cluster, count=jobs + 2, gpus=8, cpu="64", prefix="pool-", labels={POOL: "yes"})
        nodes.wait_nodes_ready(cluster, timeout_seconds=600)
        prepare_namespace(cluster, NAMESPACE)
        with running_operator(cluster, {"ELASTRAIN_LEADER_ELECTION": "false"}) as (operator, port):
            seen = Seen(cluster)
            idle_rss = rss_mb(operator.pid)
            items = [job_manifest(f"j-{i}") for i in range(jobs)]
            start = time.monotonic()
            cluster.kubectl(
                "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}), timeout=600
            )

            def every_job_whole() -> dict[str, list[float]] | None:
                by_job = seen.first_seen_by_job()
                return by_job if len(by_job) == jobs and all(len(t) >= WORKERS + 1 for t in by_job.values()) else None

            by_job = until(every_job_whole, what=f"the pods of {jobs} jobs", timeout=1800, interval=0.1)
            fanout = [sorted(times)[WORKERS] - start for times in by_job.values()]  # the 9th pod of each job
            until(
                lambda: all(p["status"].get("phase") == "Running" for p in all_pods(cluster)),
                what="every pod Running",
                timeout=900,
                interval=2.0,
            )
            time.sleep(5)  # the last status writes of Running settle
            before, t0 = api_requests(port), time.monotonic()
            time.sleep(steady_seconds)
            steady_rps = (api_requests(port) - before) / (time.monotonic() - t0)
            rss, cpu = rss_mb(operator.pid), cpu_seconds(operator.pid)
            latencies = []
            for i in range(runs):
                latencies.append(replacement(cluster, seen))
                print(f"  {jobs} jobs: NotReady -> replacement {latencies[-1]:.2f} s (run {i + 1})", flush=True)
                time.sleep(3)
    finally:
        cluster.down()
    return {
        "jobs": jobs,
        "pods": jobs * (WORKERS + 1),
        "fanout_p50_s": quantile(fanout, 0.5),
        "fanout_p99_s": quantile(fanout, 0.99),
        "all_pods_s": max(fanout),
        "steady_requests_per_s": steady_rps,
        "idle_rss_mb": idle_rss,
        "rss_mb": rss,
        "cpu_s": cpu,
        "notready_to_replacement_s": statistics.median(latencies) if latencies else None,
        "notready_to_replacement_runs": latencies,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, nargs="+", default=[10, 100], help="job counts, one cluster each")
    parser.add_argument("--runs", type=int, default=3, help="node failures to time per job count")
    parser.add_argument("--steady-seconds", type=float, default=30.0, help="window of the steady-state request rate")
    args = parser.parse_args()
    results = [run(jobs, args.runs, args.steady_seconds) for jobs in args.jobs]
    rows = [
        [
            r["jobs"],
            r["pods"],
            r["fanout_p50_s"],
            r["fanout_p99_s"],
            r["all_pods_s"],
            r["steady_requests_per_s"],
            r["rss_mb"],
            r["cpu_s"],
            r["notready_to_replacement_s"],
        ]
        for r in results
    ]
    print_table(
        "operator at scale (jobs of 1 head + 8 workers; seconds unless stated)",
        ["jobs", "pods", "fan-out p50", "p99", "all pods", "steady req/s", "RSS MB", "CPU s", "NotReady->new"],
        rows,
    )
    path = write_json("operator_scale", {"results": results})
    print(f"json: {path}")


if __name__ == "__main__":
    main()
