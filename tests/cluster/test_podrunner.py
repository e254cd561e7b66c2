"""The local pod runner (development infrastructure): pods on fake nodes run as real local processes."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from elastrain_dev import nodes
from elastrain_dev.cluster import LocalCluster
from elastrain_dev.podrunner import RUN_LABEL, PodRunner, job_ray_port, pod_ip
from elastrain_dev.wait import until


def _pod(name: str, code: str, node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "local",
                "command": [sys.executable, "-c", code],
                "env": [
                    {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "PEER", "value": "http://peer.NAMESPACE.svc:8080/x"},
                ],
            }
        ],
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 5,
    }
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {RUN_LABEL: "true"}}, "spec": spec}


def _create(cluster: LocalCluster, namespace: str, pod: dict[str, Any]) -> None:
    text = json.dumps(pod).replace("NAMESPACE", namespace)
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=text)


def _get(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any] | None:
    return cluster.get_json("pod", name, "-n", namespace)


def test_runs_the_command_with_the_pod_env_and_reports_the_exit_code(
    cluster: LocalCluster, namespace: str, runner: PodRunner, tmp_path: Path
) -> None:
    # A Service whose pod the env refers to by DNS name: the runner resolves it to that pod's address.
    cluster.kubectl(
        "create",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "peer"},
                "spec": {"clusterIP": "None", "selector": {"app": "peer"}, "ports": [{"port": 8080}]},
            }
        ),
    )
    peer = _pod("peer", "import time; time.sleep(300)")
    peer["metadata"]["labels"]["app"] = "peer"
    _create(cluster, namespace, peer)
    until(lambda: (p := _get(cluster, namespace, "peer")) and p["status"].get("phase") == "Running", what="peer")
    _create(
        cluster, namespace, _pod("exits", "import os, sys; print(os.environ['MY_IP'], os.environ['PEER']); sys.exit(3)")
    )
    pod = until(
        lambda: (p := _get(cluster, namespace, "exits")) and p["status"].get("phase") == "Failed" and p,
        what="pod exits Failed",
    )
    (container,) = pod["status"]["containerStatuses"]
    assert container["state"]["terminated"]["exitCode"] == 3
    ip = pod_ip(pod["metadata"]["uid"])
    assert pod["status"]["podIP"] == ip and ip.startswith("127.")
    peer_ip = pod_ip(_get(cluster, namespace, "peer")["metadata"]["uid"])  # type: ignore[index]
    assert peer_ip != ip
    output = (tmp_path / namespace / "exits" / "container.log").read_text()
    assert output.split() == [ip, f"http://{peer_ip}:8080/x"]


def _failed(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    pod: dict[str, Any] = until(
        lambda: (p := _get(cluster, namespace, name)) and p["status"].get("phase") == "Failed" and p,
        what=f"pod {name} Failed",
    )
    terminated: dict[str, Any] = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    return terminated


def test_reports_the_termination_message_or_with_fallback_the_logs_tail(
    cluster: LocalCluster, namespace: str, runner: PodRunner
) -> None:
    _create(
        cluster,
        namespace,
        _pod("says", "import os, sys; open(os.environ['ELASTRAIN_TERMINATION_LOG'], 'w').write('why'); sys.exit(1)"),
    )
    crash = _pod("crashes", "print('starting'); raise KeyError('the key')")
    crash["spec"]["containers"][0]["terminationMessagePolicy"] = "FallbackToLogsOnError"
    _create(cluster, namespace, crash)
    quiet = _pod("quiet", "raise KeyError('the key')")  # default policy File: no fallback to the log
    _create(cluster, namespace, quiet)
    assert _failed(cluster, namespace, "says")["message"] == "why"
    tail = _failed(cluster, namespace, "crashes")["message"]
    assert tail.startswith("starting\nTraceback") and tail.endswith("KeyError: 'the key'"), tail
    assert "message" not in _failed(cluster, namespace, "quiet")


@pytest.fixture
def spare_node(cluster: LocalCluster) -> Iterator[str]:
    (name,) = nodes.add_nodes(cluster, count=1, gpus=8, prefix="runner-node-")
    cluster.kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=60s")
    yield name
    cluster.kubectl("delete", "node", name, "--wait=false", check=False)


def _pid_of(runner: PodRunner, namespace: str, name: str) -> int:
    running = until(lambda: runner.processes.get(f"{namespace}/{name}"), what=f"process of {name}")
    return running.process.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"


def test_a_failed_node_takes_its_processes_down(
    cluster: LocalCluster, namespace: str, runner: PodRunner, spare_node: str
) -> None:
    _create(cluster, namespace, _pod("sleeper", "import time; time.sleep(600)", node=spare_node))
    pid = _pid_of(runner, namespace, "sleeper")
    until(lambda: (p := _get(cluster, namespace, "sleeper")) and p["status"].get("phase") == "Running", what="Running")
    assert _alive(pid)
    nodes.fail_node(cluster, spare_node)
    try:
        until(lambda: not _alive(pid), what="the process killed with its node", timeout=10)
    finally:
        nodes.restore_node(cluster, spare_node)


def test_deleting_a_pod_stops_its_process_and_finalises_the_deletion(
    cluster: LocalCluster, namespace: str, runner: PodRunner
) -> None:
    _create(cluster, namespace, _pod("deleted", "import time; time.sleep(600)"))
    pid = _pid_of(runner, namespace, "deleted")
    cluster.kubectl("delete", "pod", "deleted", "-n", namespace, "--wait=false")
    until(lambda: not _alive(pid), what="the process stopped", timeout=20)
    until(lambda: _get(cluster, namespace, "deleted") is None, what="the pod gone", timeout=20)


def _finished(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        pod = _get(cluster, namespace, name)
        return pod if pod and pod["status"].get("phase") in ("Succeeded", "Failed") else None

    return until(finished, what=f"pod {name} finished")


def test_two_pods_on_one_node_each_have_an_address_and_bind_the_same_port(
    cluster: LocalCluster, namespace: str, runner: PodRunner, spare_node: str
) -> None:
    # What two jobs' heads on one fake node do (Ray's GCS port, the lighthouse): as on a real cluster,
    # each pod listens on its own IP, so the same port is free for both.
    code = (
        "import os, socket, time; s = socket.socket(); s.bind((os.environ['MY_IP'], 36999)); s.listen(); "
        "time.sleep(3); print('bound', os.environ['MY_IP'])"
    )
    for name in ("first", "second"):
        _create(cluster, namespace, _pod(name, code, node=spare_node))
    done = {name: _finished(cluster, namespace, name) for name in ("first", "second")}
    assert {p["spec"]["nodeName"] for p in done.values()} == {spare_node}
    assert [p["status"]["phase"] for p in done.values()] == ["Succeeded", "Succeeded"], done
    assert done["first"]["status"]["podIP"] != done["second"]["status"]["podIP"]


def test_each_jobs_pods_get_one_ray_port_of_their_own(
    cluster: LocalCluster, namespace: str, runner: PodRunner, spare_node: str
) -> None:
    # Ray's GCS listens on every interface, so two jobs' heads on one machine need two ports: the runner
    # gives every pod of a job the same one (head and workers agree) and another job another.
    code = "import os; print('port', os.environ['ELASTRAIN_RAY_PORT'])"
    # Two jobs whose ports differ (a 1-in-1820 clash of the hash is possible, and would be a different test).
    other = next(j for j in ("b", "c", "d") if job_ray_port(namespace, j) != job_ray_port(namespace, "a"))
    for name, job in (("a-head", "a"), ("a-worker", "a"), ("b-head", other)):
        pod = _pod(name, code, node=spare_node)
        pod["metadata"]["labels"]["elastrain.dev/job"] = job
        pod["spec"]["containers"][0]["env"].append({"name": "ELASTRAIN_RAY_PORT", "value": "6379"})
        _create(cluster, namespace, pod)
    ports = {}
    for name in ("a-head", "a-worker", "b-head"):
        assert _finished(cluster, namespace, name)["status"]["phase"] == "Succeeded"
        log = runner.workdir / namespace / name / "container.log"
        ports[name] = int(log.read_text().split("port", 1)[1].split()[0])
    assert ports["a-head"] == ports["a-worker"] == job_ray_port(namespace, "a")
    assert ports["b-head"] == job_ray_port(namespace, other) != ports["a-head"]
