"""The `elastrain-operator` entry point as a process: settings from env, leader Lease, then reconciling."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from elastrain_dev.jobdriver import JobDriver
from elastrain_dev.processes import free_port
from elastrain_dev.wait import until


def test_entry_point_takes_the_lease_and_runs_jobs(idle_job: JobDriver, namespace: str, tmp_path: Path) -> None:
    exe = shutil.which("elastrain-operator", path=str(Path(sys.executable).parent))
    assert exe, "elastrain-operator is not installed next to this Python; run make venv"
    env = {
        **os.environ,
        "KUBECONFIG": str(idle_job.cluster.kubeconfig),
        "ELASTRAIN_NAMESPACES": namespace,
        "ELASTRAIN_LEASE_NAMESPACE": namespace,
        "ELASTRAIN_METRICS_PORT": "0",
        "ELASTRAIN_LEADER_ELECTION": "true",  # whatever other fixtures of the session put in os.environ
        "ELASTRAIN_LIVENESS_PORT": "0",
    }
    log = (tmp_path / "operator.log").open("w")
    proc = subprocess.Popen([exe], env=env, stdout=log, stderr=subprocess.STDOUT)
    standby: subprocess.Popen[bytes] | None = None
    try:

        def holder() -> str | None:
            lease = idle_job.cluster.get_json("lease", "elastrain-operator", "-n", idle_job.namespace)
            return str(lease["spec"].get("holderIdentity")) if lease else None

        # The first replica takes the Lease; only then does a second one start, and it must stand by.
        assert until(holder, what="the Lease taken", timeout=60).endswith(f"-{proc.pid}")
        standby_port = free_port()
        standby = subprocess.Popen(
            [exe], env={**env, "ELASTRAIN_LIVENESS_PORT": str(standby_port)}, stdout=log, stderr=subprocess.STDOUT
        )
        idle_job.create()
        idle_job.wait_phase("Running", timeout=90)
        assert (holder() or "").endswith(f"-{proc.pid}")
        # The second replica stands by, and is alive as far as its liveness probe can tell.
        assert standby.poll() is None

        def healthz() -> int:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{standby_port}/healthz", timeout=2) as resp:
                    return int(resp.status)
            except OSError:
                return 0

        assert until(healthz, what="the standby's /healthz", timeout=30) == 200
    finally:
        for process in (standby, proc):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
        log.close()
    assert proc.returncode is not None
    until(
        lambda: "Operator is stopping" in (tmp_path / "operator.log").read_text() or proc.returncode == 0,
        what="a clean stop",
        timeout=5,
    )
