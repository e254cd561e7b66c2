"""Operator chaos: the real operator process is SIGKILLed at random moments through a job's whole life.

Through create, scale up, a worker failure, scale down, suspend, resume, completion and a second
job's deletion, the operator is killed (SIGKILL: no clean-up of any kind) 7 times per step at a
random moment (56 kills), plus once after each settled step (63 in all). After every kill: no two
live pods hold the same role and index, and every pod of the job is owned by it. After each step,
a fresh operator brings the job to the expected state; the job completes.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from elastrain_dev.jobdriver import JobDriver
from elastrain_dev.wait import until

KILLS_PER_STEP = 7


class ChaosOperator:
    """Starts `elastrain-operator` processes and kills them with SIGKILL."""

    def __init__(self, namespace: str, kubeconfig: Path, log: Path) -> None:
        exe = shutil.which("elastrain-operator", path=str(Path(sys.executable).parent))
        assert exe, "elastrain-operator is not installed next to this Python; run make venv"
        self.argv = [exe]
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "ELASTRAIN_NAMESPACES": namespace,
            "ELASTRAIN_LEADER_ELECTION": "false",  # a SIGKILLed leader would hold the Lease for its duration
            "ELASTRAIN_METRICS_PORT": "0",
            "ELASTRAIN_LIVENESS_PORT": "0",
            "ELASTRAIN_RESYNC_SECONDS": "0.5",
        }
        self.log = log.open("ab")
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.proc is not None
        assert self.proc.poll() is None, "the operator exited on its own: see the chaos log"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.kills += 1

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture
def chaos(idle_job: JobDriver, namespace: str, tmp_path: Path) -> Iterator[ChaosOperator]:
    operator = ChaosOperator(namespace, idle_job.cluster.kubeconfig, tmp_path / "operator.log")
    yield operator
    operator.close()


def _assert_sound(job: JobDriver) -> None:
    """No duplicate live pods per role/index; every pod of the job is owned by the job."""
    pods = job.pods()
    live = [p for p in pods.values() if "deletionTimestamp" not in p["metadata"]]
    held = Counter(
        (p["metadata"]["labels"]["elastrain.dev/role"], p["metadata"]["labels"]["elastrain.dev/index"]) for p in live
    )
    assert all(count == 1 for count in held.values()), f"duplicate live pods: {held}"
    uid = (job.get() or {}).get("metadata", {}).get("uid")
    for pod in pods.values():
        owners = pod["metadata"].get("ownerReferences", [])
        assert [o["uid"] for o in owners] == [uid], f"pod {pod['metadata']['name']} is not owned by the job"


def _storm(chaos: ChaosOperator, job: JobDriver, rng: random.Random, action: Callable[[], Any]) -> None:
    """Do ``action`` while operators are started and SIGKILLed at random moments."""
    for round_ in range(KILLS_PER_STEP):
        chaos.start()
        if round_ == 1:
            action()
        time.sleep(rng.uniform(0.5, 3.0))  # anywhere from start-up to mid-reconcile
        chaos.kill()
        _assert_sound(job)


def test_operator_killed_56_times_through_a_job_life_loses_nothing(idle_job: JobDriver, chaos: ChaosOperator) -> None:
    job, rng = idle_job, random.Random(20261125)
    elastic = {"minReplicas": 1, "maxReplicas": 4}

    def settle(ready: int, phase: str = "Running") -> dict[str, Any]:
        chaos.start()

        def reached() -> dict[str, Any] | None:
            status = job.status()
            ok = status.get("phase") == phase and status.get("workers", {}).get("ready") == ready
            return status if ok and len(job.live()) == (ready + 1 if ready else 0) else None

        status = until(reached, what=f"{phase} with {ready} ready workers", timeout=90)
        chaos.kill()
        _assert_sound(job)
        return status

    _storm(chaos, job, rng, lambda: job.create(replicas=2, elastic=elastic))
    settle(2)
    _storm(chaos, job, rng, lambda: job.kubectl("scale", "tj", "job", "--replicas=4"))
    settle(4)
    _storm(chaos, job, rng, lambda: job.finish_pod(job.live_name("worker", 3), 137))
    status = settle(4)
    assert status.get("restarts", {}).get("application", 0) == 0
    _storm(chaos, job, rng, lambda: job.kubectl("scale", "tj", "job", "--replicas=1"))
    settle(1)
    patch = '{"spec": {"runPolicy": {"suspend": %s}}}'
    _storm(chaos, job, rng, lambda: job.kubectl("patch", "tj", "job", "--type=merge", "-p", patch % "true"))
    settle(0, "Suspended")
    _storm(chaos, job, rng, lambda: job.kubectl("patch", "tj", "job", "--type=merge", "-p", patch % "false"))
    settle(1)
    _storm(chaos, job, rng, lambda: job.finish_pod(job.live_name("head"), 0))
    chaos.start()
    status = job.wait_phase("Succeeded", timeout=90)
    until(lambda: not [k for k in job.live() if k[0] == "worker"], what="workers cleaned up after success")
    chaos.kill()
    assert status["completionTime"]

    # A second job, deleted while operators die around it: nothing is left behind.
    other = JobDriver(job.cluster, job.namespace, base=job.base, name="other")
    other.create(replicas=2)
    _storm(chaos, other, rng, lambda: other.kubectl("delete", "tj", "other", "--wait=false"))
    until(lambda: other.get() is None and not other.pods(), what="job other and its pods gone", timeout=90)
    assert chaos.kills >= 50
