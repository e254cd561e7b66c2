"""This pod's Ray node: ``ray start --block`` as a child process that lives and dies with the pod.

A head pod runs the Ray head (GCS on the contract's Ray port) with no worker resource; a worker pod
runs a Ray node that joins the head and advertises :data:`WORKER_RESOURCE`, one unit per rank, so
the driver starts one replica group on it. ``--block`` keeps ``ray start`` in the foreground:
it stops every Ray process it started when it exits or is signalled, and the pod's processes go
together when the pod is deleted.

Every Ray node gets a temp dir of its own (sockets, logs). On Kubernetes each pod has its own
filesystem anyway; where several pods share a machine (the development pod runner), Ray's
default shared /tmp/ray lets two nodes starting at the same moment pick the same socket name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from elastrain_trainer.config.podenv import PodContract
from elastrain_trainer.driver.pods import WORKER_RESOURCE

#: CPUs the head's Ray node offers: the driver's own tasks (rank actors run on worker nodes).
HEAD_CPUS = 1
#: Seconds a stopping Ray process gets after SIGTERM before SIGKILL (training is over; nothing to drain).
STOP_GRACE_SECONDS = 3.0


def ray_executable() -> str:
    """The ``ray`` CLI of this Python environment (the image's), else the one on PATH."""
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.exists() else (shutil.which("ray") or "ray")


def temp_dir_for(pod_name: str) -> Path:
    """A short per-pod temp dir (Unix socket paths must stay under 108 bytes)."""
    digest = hashlib.sha256(pod_name.encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"ray-{digest}"


def node_ip(contract: PodContract) -> str:
    """The address this pod's Ray node advertises: the pod IP from the downward API."""
    if not contract.pod_ip:
        raise ValueError(
            "ELASTRAIN_POD_IP is not set: the operator sets it from status.podIP (downward API); "
            "set it to this pod's IP when running the trainer by hand"
        )
    return contract.pod_ip


def head_argv(contract: PodContract, temp_dir: Path) -> list[str]:
    return [
        ray_executable(),
        "start",
        "--head",
        "--block",
        f"--node-ip-address={node_ip(contract)}",
        f"--port={contract.ray_port}",
        f"--num-cpus={HEAD_CPUS}",
        "--num-gpus=0",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
    ]


def worker_argv(contract: PodContract, temp_dir: Path) -> list[str]:
    ranks = contract.accelerators_per_worker
    return [
        ray_executable(),
        "start",
        "--block",
        f"--address={contract.head_address}:{contract.ray_port}",
        f"--node-ip-address={node_ip(contract)}",
        f"--num-cpus={ranks}",
        f"--num-gpus={ranks if contract.device == 'gpu' else 0}",
        f"--resources={json.dumps({WORKER_RESOURCE: ranks})}",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
    ]


def ray_env() -> dict[str, str]:
    """The pod's environment for Ray's processes (RAY_AUTH_* from the job's Secret pass through)."""
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "warn")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


def start_ray(argv: list[str]) -> subprocess.Popen[bytes]:
    """Start ``ray start --block``; its output goes to the pod's log."""
    print(f"elastrain: {' '.join(argv)}", file=sys.stderr, flush=True)
    return subprocess.Popen(argv, env=ray_env(), stdin=subprocess.DEVNULL)


def stop_ray(process: subprocess.Popen[bytes]) -> None:
    """Stop ``ray start --block`` and every process under it (GCS, raylet, agents, workers).

    The tree is listed first and each member gets SIGTERM, then SIGKILL after a grace period: a
    head that exits on its own leaves nothing behind, on Kubernetes or on a shared machine.
    """
    import psutil

    try:
        root = psutil.Process(process.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for member in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=STOP_GRACE_SECONDS)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(alive, timeout=STOP_GRACE_SECONDS)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=1.0)


def wait_for_head(address: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Return once the head's GCS port (``host:port``) accepts connections; fail early if ``ray start`` exited."""
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"ray start exited with {process.returncode} before the head came up; see the log above")
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                break
        except OSError as err:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head at {address} did not come up within {timeout:.0f} s: {err}") from err
            time.sleep(0.5)


def connect(address: str, node_ip_address: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """``ray.init`` against the local head once its GCS port answers."""
    import ray

    wait_for_head(address, process, timeout)
    ray.init(address=address, _node_ip_address=node_ip_address, log_to_driver=False)
