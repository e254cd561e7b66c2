"""Ray's token authentication on the head a TrainingJob's head pod starts: no token, no entry.

The operator puts a per-job token in a Secret and gives every pod of the job RAY_AUTH_MODE=token and
RAY_AUTH_TOKEN from it. Here the head runs the exact `ray start` command of `elastrain pod head`;
a client with the token connects, clients with a wrong token or none are refused by the GCS.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from elastrain_trainer.config import TrainerConfig
from elastrain_trainer.config.podenv import PodContract
from elastrain_trainer.pod.raynode import head_argv, stop_ray, temp_dir_for, wait_for_head

TOKEN = "elastrain-test-token-0123456789abcdef0123456789abcdef"
HEAD_IP = "127.56.0.1"
CLIENT = """
import sys, ray
try:
    ray.init(address=sys.argv[1], _node_ip_address=sys.argv[2], log_to_driver=False)
except ConnectionError as err:
    print("refused:", err)
    sys.exit(3)
print("connected, CPUs:", ray.cluster_resources().get("CPU"))
"""


def _free_port() -> int:
    """A free port below Ray's default worker port range (10002-19999), which `ray start` refuses."""
    for port in range(9300, 10000):
        with socket.socket() as probe:
            try:
                probe.bind((HEAD_IP, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 9300-9999")


def _client(address: str, token: str | None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    if token is not None:
        env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    return subprocess.Popen(
        [sys.executable, "-c", CLIENT, address, HEAD_IP],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_the_head_admits_only_clients_with_the_jobs_token(tmp_path: Path) -> None:
    port = _free_port()
    contract = PodContract(
        job_name="auth",
        namespace="ns",
        role="head",
        pod_name="auth-head",
        pod_ip=HEAD_IP,
        head_address=HEAD_IP,
        ray_port=port,
        min_workers=1,
        max_workers=1,
        accelerators_per_worker=1,
        device="cpu",
        trainer=TrainerConfig(),
    )
    env = {**os.environ, "RUST_LOG": "warn", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}
    log = (tmp_path / "head.log").open("w")
    argv = head_argv(contract, temp_dir_for(f"auth-test-{os.getpid()}"))  # short: Unix socket paths
    head = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        address = f"{HEAD_IP}:{port}"
        try:
            wait_for_head(address, head, timeout=60)
        except RuntimeError as err:
            raise AssertionError(f"{err}\n{(tmp_path / 'head.log').read_text()[-3000:]}") from err
        clients = {
            name: _client(address, token) for name, token in {"none": None, "wrong": "x" * 40, "right": TOKEN}.items()
        }
        results = {name: (c.wait(timeout=120), c.stdout.read() if c.stdout else "") for name, c in clients.items()}
    finally:
        stop_ray(head)
        log.close()
    assert results["right"][0] == 0 and "connected" in results["right"][1], results["right"]
    for name in ("none", "wrong"):
        code, output = results[name]
        assert code == 3, (name, output[-2000:])
        assert "InvalidAuthToken" in output or "Unauthenticated" in output, (name, output[-2000:])
