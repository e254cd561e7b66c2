"""A planned scale-down on the local cluster: ``kubectl scale tj --replicas 1`` under a job training with 3.

The demo's set-up (control plane, fake nodes, pod runner, the ``elastrain-operator`` process, the demo
job with ``elastic.minReplicas: 1``), then the scale-down, then the run to the last step. :func:`run_scale_down`
returns what it saw; the end-to-end test (tests/e2e/test_graceful_scale_down.py) asserts on it.
``legacy=True`` sets ``elastic.leaveTimeoutSeconds: 0``: the pods are deleted at once, as before graceful leave.
"""

from __future__ import annotations

import itertools
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from elastrain_dev import nodes
from elastrain_dev.cluster import REPO_ROOT, LocalCluster
from elastrain_dev.demo import (
    DEMO_JOB,
    Watch,
    _manifest,
    _prepare,
    _ready,
    _start_operator,
    _step,
    _summary,
    job_events,
)
from elastrain_dev.jobdriver import JobDriver
from elastrain_dev.podrunner import PodRunner

#: Steps of the job, and the step after which it is scaled down (with every worker training).
STEPS = 240
SCALE_AT = 60


@dataclass
class ScaleDownResult:
    status: dict[str, Any]
    events: list[dict[str, Any]]
    summary: dict[str, Any]
    scaled_at_step: int
    pause: float
    """The longest wall-clock gap between two committed steps just after the groups left (the survivors' pause)."""
    steady: float
    """The median gap between committed steps before it (the steady step time)."""


#: Steps after the resize in which the survivors' pause is looked for (later gaps are checkpoints, evals).
PAUSE_WINDOW = 5


def longest_pause(metrics: list[dict[str, Any]], events: list[dict[str, Any]], scaled_at: int) -> tuple[float, float]:
    """(longest gap between committed steps in the :data:`PAUSE_WINDOW` steps after the groups left (or after
    ``scaled_at`` if none left), median gap before ``scaled_at``), in seconds."""
    resized = next((int(e["step"]) for e in events if e["kind"] in ("group_left", "group_lost")), scaled_at)
    times = [(int(m["step"]), float(m["wall_time"])) for m in metrics if m.get("committed", True)]
    gaps = [(b[0], b[1] - a[1]) for a, b in itertools.pairwise(times)]
    before = sorted(g for step, g in gaps if step <= scaled_at) or [0.0]
    after = [g for step, g in gaps if resized < step <= resized + PAUSE_WINDOW] or [0.0]
    return max(after), before[len(before) // 2]


def run_scale_down(
    cluster: LocalCluster, *, namespace: str, output: Path, to: int = 1, legacy: bool = False
) -> ScaleDownResult:
    nodes.bring_up(cluster, nodes=4, gpus=8)
    crd = str(REPO_ROOT / "crds" / "trainingjobs.elastrain.dev.yaml")
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", crd)
    cluster.kubectl("wait", "--for=condition=Established", "crd/trainingjobs.elastrain.dev", "--timeout=60s")
    shutil.rmtree(output / "pods", ignore_errors=True)
    runner = PodRunner(cluster.kubeconfig, output / "pods", extra_path=str(Path(sys.executable).parent))
    runner.start_in_thread()
    pool: list[str] = []
    operator = None
    try:
        pool = _prepare(cluster, namespace)
        operator = _start_operator(cluster, namespace)
        checkpoints = output / "checkpoints"
        name, job = _manifest(DEMO_JOB, checkpoints)
        job["spec"]["elastic"] = {"minReplicas": 1, "maxReplicas": 3, **({"leaveTimeoutSeconds": 0} if legacy else {})}
        job["spec"]["trainer"]["steps"] = STEPS
        watch = Watch(cluster, namespace, name)
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(job))
        watch.until(
            f"3 workers training past step {SCALE_AT}",
            lambda s: s.get("phase") == "Running" and _ready(s) == 3 and _step(s) >= SCALE_AT,
            timeout=300,
        )
        head = str(JobDriver(cluster, namespace, base=job, name=name).running("head")["metadata"]["name"])
        scaled_at = _step(watch.status())
        cluster.kubectl("scale", "tj", name, "-n", namespace, f"--replicas={to}")
        watch.until(f"{to} worker(s) ready", lambda s: _ready(s) == to, timeout=120)
        status = watch.until("the job to succeed", lambda s: s.get("phase") == "Succeeded", timeout=900)
        events = job_events(cluster, namespace, name)
        summary = _summary(checkpoints, head)
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait(timeout=30)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        for node in pool:
            cluster.kubectl("delete", "node", node, "--wait=false", check=False)
        cluster.kubectl("wait", "--for=delete", f"namespace/{namespace}", "--timeout=120s", check=False, timeout=150)
        runner.stop()
    pause, steady = longest_pause(summary["metrics"], summary["events"], scaled_at)
    return ScaleDownResult(status, events, summary, scaled_at, pause, steady)
