"""``make demo``: a real TrainingJob trains on the local cluster through a node loss, seen through `kubectl`.

1. the local control plane and its fake nodes (KWOK), the TrainingJob CRD;
2. the development pod runner (runs the job's pods as local processes) and the operator (the real
   ``elastrain-operator`` process);
3. ``kubectl apply -f examples/demo.yaml``: a head pod (Ray head, torchft lighthouse, driver) and
   3 worker pods (one replica group each) train a tiny GPT on CPU; ``kubectl get tj`` rows show
   phase, workers, step and loss;
4. the node under a worker fails: its processes die at once, the other groups keep training, the
   job shrinks to 2 workers and says why a replacement cannot be placed (ScaleUpBlocked);
5. a node is added: the replacement starts, its group heals from a live peer, the job grows to 3;
6. the job Succeeds; ``kubectl describe tj`` tells the story; the run summary's ledger audit shows
   every sample trained exactly once, and a loss curve PNG marks the resizes.

:func:`run` returns what it saw, so the end-to-end test (tests/e2e/test_demo.py) runs the same
demo and asserts on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from elastrain_dev import nodes
from elastrain_dev.cluster import REPO_ROOT, LocalCluster
from elastrain_dev.jobdriver import JobDriver
from elastrain_dev.podrunner import PodRunner
from elastrain_dev.processes import free_port
from elastrain_dev.wait import until

DEMO_JOB = REPO_ROOT / "examples" / "demo.yaml"
NAMESPACE = "demo"
POOL_LABEL = "elastrain.dev/demo-pool"
#: On every node the demo adds, so a run can remove what an interrupted one left.
DEMO_NODE_LABEL = "elastrain.dev/demo-node"
#: Fail the node once this fraction of the steps is done.
FAIL_AT = 0.2
#: Seconds the whole job may take on 2 busy cores before the demo gives up.
JOB_TIMEOUT = 900.0


@dataclass
class DemoResult:
    """What the demo saw: the final status and Events, the head's run summary, the loss curve."""

    namespace: str
    job: str
    status: dict[str, Any]
    events: list[dict[str, Any]]
    summary: dict[str, Any]
    curve: Path
    failed_node: str
    lost_pod: str
    progress: list[dict[str, Any]] = field(default_factory=list)
    """status.progress as seen at each poll, in order."""
    seconds: float = 0.0


def _say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


class Watch:
    """Polls the job; prints `kubectl get tj -o wide` rows like `kubectl get tj -w` (a row per change of
    phase or workers, and one per tenth of the steps), and keeps every status.progress seen."""

    def __init__(self, cluster: LocalCluster, namespace: str, job: str) -> None:
        self.cluster, self.namespace, self.job = cluster, namespace, job
        self.progress: list[dict[str, Any]] = []
        self._shown: tuple[Any, ...] | None = None
        self._header = True

    def status(self) -> dict[str, Any]:
        out = self.cluster.kubectl("get", "tj", self.job, "-n", self.namespace, "-o", "json").stdout
        status: dict[str, Any] = json.loads(out).get("status") or {}
        if status.get("progress"):
            self.progress.append(status["progress"])
        return status

    def show(self, status: dict[str, Any]) -> None:
        progress = status.get("progress") or {}
        total = max(1, int(progress.get("totalSteps") or 1))
        workers = status.get("workers") or {}
        key = (
            status.get("phase"),
            workers.get("ready"),
            len(status.get("resizes") or []),
            progress.get("step", 0) * 10 // total,
        )
        if key == self._shown:
            return
        self._shown = key
        lines = (
            self.cluster.kubectl("get", "tj", self.job, "-n", self.namespace, "-o", "wide").stdout.rstrip().splitlines()
        )
        print("\n".join(lines) if self._header else lines[-1], flush=True)
        self._header = False

    def until(self, what: str, done: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            self.show(status)
            if status.get("phase") == "Failed" and not done(status):
                raise RuntimeError(f"demo: the job failed while waiting for {what}: {status.get('conditions')}")
            if done(status):
                return status
            time.sleep(0.5)
        raise TimeoutError(f"demo: timed out after {timeout:.0f} s waiting for {what}")


def _step(status: dict[str, Any]) -> int:
    return int((status.get("progress") or {}).get("step") or 0)


def _ready(status: dict[str, Any]) -> int:
    return int((status.get("workers") or {}).get("ready") or 0)


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind and c["status"] == "True"), None)


def _start_operator(cluster: LocalCluster, namespace: str) -> subprocess.Popen[bytes]:
    exe = shutil.which("elastrain-operator", path=str(Path(sys.executable).parent)) or "elastrain-operator"
    log_path = cluster.log_dir / "operator.log"
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "ELASTRAIN_METRICS_PORT": str(free_port()),
        "ELASTRAIN_LIVENESS_PORT": "0",
        "ELASTRAIN_LEASE_NAMESPACE": namespace,
        "ELASTRAIN_LEADER_ELECTION": "true",
        "ELASTRAIN_RESYNC_SECONDS": "1",
    }
    with log_path.open("ab") as log:
        operator = subprocess.Popen([exe], env=env, stdout=log, stderr=subprocess.STDOUT)
    print(f"operator: pid {operator.pid}, log {log_path}")
    return operator


def _manifest(path: Path, checkpoints: Path) -> tuple[str, dict[str, Any]]:
    """The demo's TrainingJob with its checkpoints in ``checkpoints`` (emptied first)."""
    job: dict[str, Any] = yaml.safe_load(path.read_text())
    shutil.rmtree(checkpoints, ignore_errors=True)
    checkpoints.mkdir(parents=True)
    job["spec"].setdefault("checkpoint", {})["uri"] = f"file://{checkpoints}"
    return str(job["metadata"]["name"]), job


def _summary(checkpoints: Path, head_pod: str) -> dict[str, Any]:
    path = checkpoints / "runs" / f"{head_pod}.json"
    summary: dict[str, Any] = until(
        lambda: json.loads(path.read_text()) if path.exists() else None, what=f"run summary {path}", timeout=30
    )
    return summary


def run(
    cluster: LocalCluster,
    *,
    namespace: str = NAMESPACE,
    manifest: Path = DEMO_JOB,
    output: Path | None = None,
) -> DemoResult:
    started = time.monotonic()
    output = output or cluster.log_dir.parent / "demo"
    _say("the local control plane and its fake nodes")
    nodes.bring_up(cluster, nodes=4, gpus=8)
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(REPO_ROOT / "crds" / "trainingjobs.elastrain.dev.yaml")
    )
    cluster.kubectl("wait", "--for=condition=Established", "crd/trainingjobs.elastrain.dev", "--timeout=60s")
    _say("the development pod runner (runs pods on fake nodes as local processes) and the operator")
    shutil.rmtree(output / "pods", ignore_errors=True)  # the logs of an earlier run
    runner = PodRunner(cluster.kubeconfig, output / "pods", extra_path=str(Path(sys.executable).parent))
    runner.start_in_thread()  # first: it finalises the deletion of pods an earlier run may have left
    print(f"pod runner: pod logs in {output / 'pods'}/<namespace>/<pod>/container.log")
    pool: list[str] = []
    operator: subprocess.Popen[bytes] | None = None
    failed = lost = ""
    try:
        pool = _prepare(cluster, namespace)
        operator = _start_operator(cluster, namespace)
        checkpoints = output / "checkpoints"
        name, job = _manifest(manifest, checkpoints)
        watch = Watch(cluster, namespace, name)
        _say(f"kubectl apply -f {manifest.relative_to(REPO_ROOT) if manifest.is_relative_to(REPO_ROOT) else manifest}")
        print(cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(job)).stdout, end="")
        total = int(job["spec"]["trainer"]["steps"])
        fail_step = max(1, int(total * FAIL_AT))
        watch.until(
            f"3 workers training past step {fail_step}",
            lambda s: s.get("phase") == "Running" and _ready(s) == 3 and _step(s) >= fail_step,
            timeout=300,
        )
        print(cluster.kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout, end="")

        pods = JobDriver(cluster, namespace, base=job, name=name)
        lost = str(pods.running("worker", 1)["metadata"]["name"])
        failed = json.loads(cluster.kubectl("get", "pod", lost, "-n", namespace, "-o", "json").stdout)["spec"][
            "nodeName"
        ]
        _say(f"node {failed} fails under {lost}: its processes die, its heartbeat stops")
        nodes.fail_node(cluster, failed)
        at_loss = _step(watch.status())
        status = watch.until(
            "the job to shrink to 2 workers and keep training",
            lambda s: _ready(s) == 2 and _step(s) >= at_loss + 10 and _condition(s, "ScaleUpBlocked") is not None,
            timeout=180,
        )
        blocked = _condition(status, "ScaleUpBlocked") or {}
        print(f"ScaleUpBlocked: {blocked.get('message')}")

        _say("capacity returns: a new node joins the pool")
        pool += _add_pool_nodes(cluster, 1)
        watch.until(
            "the job to grow back to 3 workers",
            lambda s: s.get("phase") == "Running" and _ready(s) == 3 and len(s.get("resizes") or []) >= 2,
            timeout=180,
        )
        _say("training to the last step")
        head = str(pods.running("head")["metadata"]["name"])
        status = watch.until("the job to succeed", lambda s: s.get("phase") == "Succeeded", timeout=JOB_TIMEOUT)

        _say(f"kubectl describe tj {name}")
        print(cluster.kubectl("describe", "tj", name, "-n", namespace).stdout, end="")
        events = job_events(cluster, namespace, name)
        summary = _summary(checkpoints, head)
        curve = _curve(summary, output / "loss-curve.png", name)
        _report(summary, curve)
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait(timeout=30)
        # The runner finalises the deletion of pods on live nodes (as a kubelet would); deleting the demo's
        # nodes lets the pod garbage collector remove the pod left on the failed one; then the runner stops.
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        for node in pool:
            cluster.kubectl("delete", "node", node, "--wait=false", check=False)
        if lost:  # no kubelet will ever confirm it: force it, as an admin would, not to wait for the pod GC
            cluster.kubectl("delete", "pod", lost, "-n", namespace, "--force", "--grace-period=0", check=False)
        cluster.kubectl("wait", "--for=delete", f"namespace/{namespace}", "--timeout=120s", check=False, timeout=150)
        runner.stop()
    seconds = time.monotonic() - started
    _say(f"done in {seconds:.0f} s: the cluster stays up (make cluster-down stops it)")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return DemoResult(
        namespace=namespace,
        job=name,
        status=status,
        events=events,
        summary=summary,
        curve=curve,
        failed_node=failed,
        lost_pod=lost,
        progress=watch.progress,
        seconds=seconds,
    )


def job_events(cluster: LocalCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    """The Events of TrainingJob ``name`` (what ``kubectl describe tj`` lists)."""
    items: list[dict[str, Any]] = json.loads(
        cluster.kubectl(
            "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}", "-o", "json"
        ).stdout
    )["items"]
    return items


def _prepare(cluster: LocalCluster, namespace: str) -> list[str]:
    """A fresh namespace and the demo's nodes (those of an interrupted run removed first)."""
    cluster.kubectl("delete", "nodes", "-l", f"{DEMO_NODE_LABEL}=true", "--ignore-not-found", "--wait=false")
    cluster.kubectl(
        "delete", "namespace", namespace, "--ignore-not-found", "--wait=true", "--timeout=120s", timeout=150
    )
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", namespace, "--timeout=60s")
    # The demo's pool: one CPU per node, so one worker per node and no spare for a replacement; the
    # head prefers a node without GPUs, and gets one of its own.
    pool = _add_pool_nodes(cluster, 3)
    pool += nodes.add_nodes(
        cluster, count=1, gpus=0, cpu="4", prefix="demo-head-node-", labels={DEMO_NODE_LABEL: "true"}
    )
    nodes.wait_nodes_ready(cluster)
    print(nodes.describe_nodes(cluster), end="")
    return pool


def _add_pool_nodes(cluster: LocalCluster, count: int) -> list[str]:
    labels = {POOL_LABEL: "true", DEMO_NODE_LABEL: "true"}
    return nodes.add_nodes(cluster, count=count, gpus=8, cpu="1", prefix="demo-node-", labels=labels)


def _curve(summary: dict[str, Any], path: Path, name: str) -> Path:
    from elastrain_trainer.curve import write_loss_curve_png
    from elastrain_trainer.metrics import StepMetrics

    metrics = [StepMetrics.from_dict(m) for m in summary["metrics"]]
    write_loss_curve_png(metrics, summary["events"], path, title=f"{name}: loss and participating groups")
    return path


def _report(summary: dict[str, Any], curve: Path) -> None:
    _say("the run, from the head's summary")
    metrics = summary["metrics"]
    print(
        f"steps {summary['step']}/{summary['totalSteps']}: loss {metrics[0]['loss']:.3f} -> {metrics[-1]['loss']:.3f}"
    )
    for audit in summary["audit"]:
        print(
            f"epoch {audit['epoch']}: trained {audit['trained']}/{audit['num_samples']} samples, "
            f"{audit['duplicated']} duplicated"
        )
    lost = [e for e in summary["events"] if e["kind"] == "group_lost"]
    healed = [e for e in summary["events"] if e["kind"] == "group_healed"]
    print(f"groups lost {len(lost)}, healed {len(healed)}; loss curve with resize markers: {curve}")
