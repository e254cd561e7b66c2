"""DEVELOPMENT INFRASTRUCTURE, not part of the operator: run the containers of pods on fake KWOK nodes
as local processes, so a real job trains on one machine.

Pods labelled ``podrunner.elastrain.dev/run=true`` (set through a TrainingJob's ``spec.pod.labels``) are
left alone by KWOK (``--disregard-status-with-label-selector``) and handled here instead, the way
a kubelet would:

- a pod bound to a healthy fake node is started: its container's command and args run with its env
  (values, downward-API fields, Secret keys) in a directory of its own; every pod has its own
  loopback address (from its UID), which becomes the pod's IP, as on a real cluster: Ray sees
  separate nodes, and two pods on one fake node (two jobs' heads) never contend for a port;
- ``<service>.<namespace>.svc`` addresses in the env are resolved to the IP of the Service's pod
  (there is no cluster DNS here);
- its status is reported: Running and Ready, then Succeeded or Failed with the exit code and the
  termination message: the file ``ELASTRAIN_TERMINATION_LOG`` names (the trainer's stand-in for the
  file a kubelet mounts at ``terminationMessagePath``), or with ``FallbackToLogsOnError`` the tail of
  the log of a failed container, as a kubelet does;
- a pod being deleted has its process stopped (SIGTERM, then SIGKILL) and its deletion finalised;
- a node that fails (taken out of KWOK's management, NotReady, or deleted) has its processes killed
  at once, and nothing more is reported for its pods: as with a real dead node.

Every process of a pod carries ``ELASTRAIN_PODRUNNER_POD=<namespace>/<name>`` in its environment
(children inherit it, also those that leave the process group, such as Ray's workers), which
stands in for the kubelet's cgroup: stopping a pod kills every process that carries its tag.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from elastrain_dev.cluster import KWOK_MANAGED_LABEL, KWOK_MANAGED_VALUE
from elastrain_trainer.config.podenv import TERMINATION_LOG_ENV, TERMINATION_MESSAGE_MAX_BYTES

RUN_LABEL = "podrunner.elastrain.dev/run"
RUN_VALUE = "true"
#: Environment variable that tags every process of a pod with ``<namespace>/<name>``.
POD_TAG = "ELASTRAIN_PODRUNNER_POD"
_SVC = re.compile(r"\b([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc(\.cluster\.local)?\b")
log = logging.getLogger("elastrain.podrunner")


#: The contract's Ray port variable, and where the runner moves it to: one port per job (see job_ray_port).
RAY_PORT_ENV = "ELASTRAIN_RAY_PORT"
JOB_LABEL = "elastrain.dev/job"
JOB_RAY_PORTS = range(6380, 8200)


def job_ray_port(namespace: str, job: str) -> int:
    """The Ray port a job's pods use here: stable per job, so its head and workers agree, and different for
    two jobs (but for a 1-in-1820 clash). Ray's GCS listens on every interface of the machine, not only on
    the pod's address, so two heads on this machine cannot share the contract's one port as two pods with
    their own network namespaces can on a real cluster."""
    return JOB_RAY_PORTS[zlib.crc32(f"{namespace}/{job}".encode()) % len(JOB_RAY_PORTS)]


def pod_ip(uid: str) -> str:
    """A stable loopback address per pod (by UID: a replacement pod gets another), in 127.10.0.1 - 127.249.249.250."""
    slot = zlib.crc32(uid.encode()) % (240 * 250 * 250)
    high, rest = divmod(slot, 250 * 250)
    middle, low = divmod(rest, 250)
    return f"127.{10 + high}.{middle}.{low + 1}"


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class Running:
    """A pod's process."""

    process: subprocess.Popen[bytes]
    node: str
    log_path: Path
    termination_log: Path
    """The file the pod's ``ELASTRAIN_TERMINATION_LOG`` names (a kubelet mounts one at ``terminationMessagePath``)."""


@dataclass
class PodRunner:
    """Polls the API server and plays the kubelet for the labelled pods of every namespace."""

    kubeconfig: Path
    workdir: Path
    extra_path: str = ""
    interval: float = 0.5
    processes: dict[str, Running] = field(default_factory=dict)

    def __post_init__(self) -> None:
        api_client = config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]
        self.api = client.CoreV1Api(api_client)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- loop ------------------------------------------------------------------------------------

    def run(self) -> None:
        """Until stop(): one pass every ``interval`` seconds; stops every process on the way out."""
        try:
            while not self._stop.is_set():
                try:
                    self.step()
                except (ApiException, OSError) as err:  # the API server restarting, for instance
                    log.warning("pod runner pass failed, retrying: %s", err)
                self._stop.wait(self.interval)
        finally:
            for key in list(self.processes):
                self._kill(key, "pod runner stopping")

    def start_in_thread(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="elastrain-podrunner", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the loop and, when it runs in a thread, wait until it has stopped every process."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"the pod runner did not stop its processes within {timeout:.0f} s")

    def step(self) -> None:
        """One pass: start, report, stop and finalise, for every labelled pod."""
        nodes = {n["metadata"]["name"]: n for n in _json(self.api.list_node(_preload_content=False))["items"]}
        selector = f"{RUN_LABEL}={RUN_VALUE}"
        pods = _json(self.api.list_pod_for_all_namespaces(label_selector=selector, _preload_content=False))["items"]
        seen = set()
        for pod in pods:
            meta = pod["metadata"]
            key = f"{meta['namespace']}/{meta['name']}"
            seen.add(key)
            node = pod["spec"].get("nodeName")
            if node and not (node in nodes and _healthy(nodes[node])):
                self._kill(key, f"node {node} lost")
                continue
            if meta.get("deletionTimestamp") is not None:
                self._kill(key, "pod deleted")
                self._finalise_deletion(pod)
                continue
            if not node:
                continue
            running = self.processes.get(key)
            if running is None and pod.get("status", {}).get("phase", "Pending") == "Pending":
                self._start(pod, node)
            elif running is not None and running.process.poll() is not None:
                self._report_exit(pod, running.process.returncode, running)
                del self.processes[key]
        for key in set(self.processes) - seen:  # the pod vanished (force-deleted, or its node deleted)
            self._kill(key, "pod gone")

    # -- kubelet duties --------------------------------------------------------------------------

    def _start(self, pod: dict[str, Any], node: str) -> None:
        meta = pod["metadata"]
        ip = pod_ip(meta["uid"])
        key = f"{meta['namespace']}/{meta['name']}"
        container = pod["spec"]["containers"][0]
        cwd = self.workdir / meta["namespace"] / meta["name"]
        cwd.mkdir(parents=True, exist_ok=True)
        termination_log = cwd / "termination-log"
        termination_log.write_text("")
        env = {**os.environ, **self._env(pod, container, ip), POD_TAG: key, TERMINATION_LOG_ENV: str(termination_log)}
        if self.extra_path:
            env["PATH"] = f"{self.extra_path}:{env.get('PATH', '')}"
        log_path = cwd / "container.log"
        argv = [*container.get("command", []), *container.get("args", [])]
        running_state = {"running": {"startedAt": _now()}}
        self._patch_status(
            pod,
            {
                "phase": "Running",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "hostIP": ip,
                "startTime": _now(),
                "conditions": _conditions(ready=True),
                "containerStatuses": [_container_status(container, running_state, ready=True)],
            },
        )
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[key] = Running(process, node, log_path, termination_log)
        log.info("started %s on %s (%s) as pid %d: %s", key, node, ip, process.pid, " ".join(argv))

    def _report_exit(self, pod: dict[str, Any], code: int, running: Running) -> None:
        exit_code = code if code >= 0 else 128 - code  # killed by signal n -> 128 + n, as a kubelet reports
        container = pod["spec"]["containers"][0]
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "finishedAt": _now(),
        }
        message = termination_message(
            running.termination_log,
            running.log_path,
            fallback_to_logs=exit_code != 0 and container.get("terminationMessagePolicy") == "FallbackToLogsOnError",
        )
        if message:
            terminated["message"] = message
        self._patch_status(
            pod,
            {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "conditions": _conditions(ready=False),
                "containerStatuses": [_container_status(container, {"terminated": terminated}, ready=False)],
            },
        )
        log.info("%s/%s exited with %d", pod["metadata"]["namespace"], pod["metadata"]["name"], exit_code)

    def _kill(self, key: str, why: str) -> None:
        running = self.processes.pop(key, None)
        if running is None:
            return
        self._stop_group(key, running, why)
        for process in tagged_processes(lambda tag: tag == key):  # what left the process group
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()

    def _stop_group(self, key: str, running: Running, why: str) -> None:
        if running.process.poll() is not None:
            return
        log.info("stopping %s (%s)", key, why)
        # A lost node takes its processes down at once; a deleted pod gets a grace period.
        grace = 0.0 if why.startswith("node ") else 5.0
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            if sig is signal.SIGTERM and grace == 0.0:
                continue
            try:
                os.killpg(running.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                running.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def _finalise_deletion(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            self.api.delete_namespaced_pod(meta["name"], meta["namespace"], grace_period_seconds=0)
        except ApiException as err:
            if err.status != 404:
                raise

    def _patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            self.api.patch_namespaced_pod_status(meta["name"], meta["namespace"], {"status": status})
        except ApiException as err:
            if err.status != 404:
                raise

    # -- env -------------------------------------------------------------------------------------

    def _env(self, pod: dict[str, Any], container: dict[str, Any], ip: str) -> dict[str, str]:
        namespace = pod["metadata"]["namespace"]
        fields = {
            "metadata.name": pod["metadata"]["name"],
            "metadata.namespace": namespace,
            "status.podIP": ip,
            "spec.nodeName": pod["spec"].get("nodeName", ""),
        }
        env: dict[str, str] = {}
        for var in container.get("env", []):
            source = var.get("valueFrom") or {}
            if "value" in var:
                env[var["name"]] = self._resolve_services(var["value"])
            elif "fieldRef" in source:
                env[var["name"]] = fields.get(source["fieldRef"]["fieldPath"], "")
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                secret = _json(self.api.read_namespaced_secret(ref["name"], namespace, _preload_content=False))
                env[var["name"]] = base64.b64decode(secret.get("data", {})[ref["key"]]).decode()
        job = (pod["metadata"].get("labels") or {}).get(JOB_LABEL)
        if RAY_PORT_ENV in env and job:
            env[RAY_PORT_ENV] = str(job_ray_port(namespace, job))
        return env

    def _resolve_services(self, value: str) -> str:
        """Replace NAME.NAMESPACE.svc with the IP of a live pod behind that Service (no cluster DNS here)."""

        def resolve(match: re.Match[str]) -> str:
            service, namespace = match.group(1), match.group(3)
            try:
                svc = _json(self.api.read_namespaced_service(service, namespace, _preload_content=False))
            except ApiException:
                return match.group(0)
            selector = ",".join(f"{k}={v}" for k, v in svc["spec"].get("selector", {}).items())
            listed = _json(self.api.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False))
            pods = [
                p for p in listed["items"] if "deletionTimestamp" not in p["metadata"] and p["spec"].get("nodeName")
            ]
            return pod_ip(pods[0]["metadata"]["uid"]) if pods else match.group(0)

        return _SVC.sub(resolve, value)


def termination_message(termination_log: Path, log_path: Path, *, fallback_to_logs: bool) -> str:
    """What a kubelet puts in ``state.terminated.message``: the termination log (at most 4096 bytes),
    or when that is empty and ``fallback_to_logs``, the container log's last 80 lines (at most 2048 bytes)."""
    with contextlib.suppress(OSError):
        written = termination_log.read_bytes()[:TERMINATION_MESSAGE_MAX_BYTES].decode(errors="replace").strip()
        if written:
            return written
    if not fallback_to_logs:
        return ""
    try:
        lines = log_path.read_bytes().splitlines()[-80:]
    except OSError:
        return ""
    return b"\n".join(lines)[-2048:].decode(errors="replace").strip()


def tagged_processes(match: Callable[[str], bool]) -> list[psutil.Process]:
    """Processes of this user whose pod tag (:data:`POD_TAG`) satisfies ``match``."""
    found = []
    for process in psutil.process_iter():
        try:
            tag = process.environ().get(POD_TAG)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if tag is not None and match(tag):
            found.append(process)
    return found


def _json(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.data)
    return data


def _healthy(node: dict[str, Any]) -> bool:
    """KWOK manages the node and it is Ready: a fake node that is "up"."""
    if node["metadata"].get("labels", {}).get(KWOK_MANAGED_LABEL) != KWOK_MANAGED_VALUE:
        return False
    ready = next((c for c in node.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)
    return ready is not None and ready["status"] == "True"


def _conditions(*, ready: bool) -> list[dict[str, str]]:
    now = _now()
    value = "True" if ready else "False"
    return [
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        {"type": "ContainersReady", "status": value, "lastTransitionTime": now},
        {"type": "Ready", "status": value, "lastTransitionTime": now},
    ]


def _container_status(container: dict[str, Any], state: dict[str, Any], *, ready: bool) -> dict[str, Any]:
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": ready,
        "restartCount": 0,
        "started": ready,
        "state": state,
    }
