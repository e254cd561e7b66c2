"""The local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK.

All binaries are built from Go modules by ``hack/build-controlplane.sh`` and cached outside the
repo. Every component listens on 127.0.0.1 on free ports; RBAC is on; clients authenticate
with certificates from :mod:`elastrain_dev.certs`. A cluster lives in a state directory
(``state.json`` with ports and pids, ``pki/``, ``logs/``, ``etcd/``) so ``cluster-up`` in one
process and ``cluster-down`` in another find the same cluster.

Node-failure timings are short for tests: a node whose heartbeat stops is NotReady after
``node_monitor_grace_seconds`` (10 s) and its pods are evicted ``toleration_seconds`` (5 s) later.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from elastrain_dev import processes
from elastrain_dev.audit import audit_args
from elastrain_dev.certs import CertPair, ClusterCerts, generate_certs
from elastrain_dev.kubeconfig import write_kubeconfig, write_token_kubeconfig

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ROOT = Path(os.environ.get("ELASTRAIN_CACHE", Path.home() / ".cache" / "elastrain"))

# Components in start order; stopped in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
BINARIES = (*COMPONENTS, "kubectl", "helm")

# Fake nodes managed by KWOK carry this label; removing it "fails" the node.
KWOK_MANAGED_LABEL = "kwok.x-k8s.io/node"
KWOK_MANAGED_VALUE = "fake"


class ClusterError(RuntimeError):
    """The local cluster could not be built, started or reached; the message says what to do."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl failed; unlike its base class, the message carries kubectl's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {self.stderr}"


@dataclass(frozen=True)
class Timings:
    """Node-failure timings, short so tests see node loss within seconds."""

    node_monitor_grace_seconds: int = 10
    node_monitor_period_seconds: int = 1
    toleration_seconds: int = 5
    node_lease_seconds: int = 4


@dataclass
class ClusterState:
    """What ``state.json`` records about a running cluster."""

    bin_dir: str
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)


def build_binaries() -> Path:
    """Build (or find cached) control-plane binaries and return their directory."""
    script = REPO_ROOT / "hack" / "build-controlplane.sh"
    try:
        out = subprocess.run(["bash", str(script)], check=True, stdout=subprocess.PIPE, text=True).stdout
    except subprocess.CalledProcessError as err:
        raise ClusterError(
            f"building the control plane failed (exit {err.returncode}); see the output above. "
            "It needs Go and the Go module proxy; run `bash hack/build-controlplane.sh` to retry."
        ) from err
    bin_dir = Path(out.strip().splitlines()[-1])
    missing = [name for name in BINARIES if not (bin_dir / name).is_file()]
    if missing:
        raise ClusterError(f"control-plane build in {bin_dir} lacks {missing}; rerun hack/build-controlplane.sh")
    return bin_dir


class LocalCluster:
    """A control plane on loopback, with fake KWOK nodes.

    ``LocalCluster(state_dir).up()`` starts it (or finds it already running), ``down()`` stops it
    and removes its state. ``kubectl(...)`` runs the real kubectl against it.
    """

    def __init__(self, state_dir: Path, *, timings: Timings | None = None) -> None:
        self.state_dir = state_dir
        self.timings = timings or Timings()
        self.pki_dir = state_dir / "pki"
        self.log_dir = state_dir / "logs"
        self.kubeconfig = state_dir / "kubeconfig"
        self.audit_log = self.log_dir / "audit.log"
        """What service accounts asked the API server (``elastrain_dev.audit``)."""
        self._state_file = state_dir / "state.json"

    # -- state ---------------------------------------------------------------------------------

    def _load_state(self) -> ClusterState | None:
        try:
            raw = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return None
        return ClusterState(**raw)

    def _save_state(self, state: ClusterState) -> None:
        self._state_file.write_text(json.dumps(asdict(state), indent=2))

    @property
    def state(self) -> ClusterState:
        state = self._load_state()
        if state is None:
            raise ClusterError(f"no cluster in {self.state_dir}; run `make cluster-up` first")
        return state

    @property
    def bin_dir(self) -> Path:
        return Path(self.state.bin_dir)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.state.ports['kube-apiserver']}"

    def is_running(self) -> bool:
        """Every component's process is alive and the API server answers /readyz."""
        state = self._load_state()
        if state is None or set(state.pids) != set(COMPONENTS):
            return False
        if not all(processes.is_alive(pid) for pid in state.pids.values()):
            return False
        return self._readyz()

    # -- lifecycle -------------------------------------------------------------------------------

    def up(self, *, bin_dir: Path | None = None) -> bool:
        """Start the control plane (no nodes yet); return False if it was already running."""
        if self.is_running():
            return False
        self.down()
        bin_dir = bin_dir or build_binaries()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = ClusterState(bin_dir=str(bin_dir))
        certs = generate_certs(
            self.pki_dir,
            clients={
                "admin": ("kubernetes-admin", "system:masters"),
                "controller-manager": ("system:kube-controller-manager", None),
                "scheduler": ("system:kube-scheduler", None),
            },
        )
        for name in (
            "etcd-client",
            "etcd-peer",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok-server",
            "kwok-node",
        ):
            state.ports[name] = processes.free_port()
        self._save_state(state)
        server = f"https://127.0.0.1:{state.ports['kube-apiserver']}"
        write_kubeconfig(self.kubeconfig, server=server, ca=certs.ca.cert, client=certs.clients["admin"], user="admin")
        cm_kubeconfig = write_kubeconfig(
            self.pki_dir / "controller-manager.kubeconfig",
            server=server,
            ca=certs.ca.cert,
            client=certs.clients["controller-manager"],
            user="controller-manager",
        )
        sched_kubeconfig = write_kubeconfig(
            self.pki_dir / "scheduler.kubeconfig",
            server=server,
            ca=certs.ca.cert,
            client=certs.clients["scheduler"],
            user="scheduler",
        )
        try:
            self._start(state, "etcd", self._etcd_args(state))
            self._wait(lambda: self._etcd_healthy(state), "etcd", 30)
            self._start(state, "kube-apiserver", self._apiserver_args(state, certs))
            self._wait(self._readyz, "kube-apiserver", 90)
            self._start(state, "kube-controller-manager", self._controller_manager_args(state, certs, cm_kubeconfig))
            self._start(state, "kube-scheduler", self._scheduler_args(state, sched_kubeconfig))
            self._start(state, "kwok", self._kwok_args(state, certs))
            self._wait(self._default_service_account_exists, "service account controller", 60)
        except BaseException:
            self.down()
            raise
        return True

    def restart_apiserver(self, *, downtime: float = 0.0) -> None:
        """Stop kube-apiserver, wait ``downtime`` seconds, start it again on the same port (for fault tests)."""
        state = self.state
        processes.stop(state.pids["kube-apiserver"])
        time.sleep(downtime)
        pki = self.pki_dir
        certs = ClusterCerts(
            ca=CertPair(pki / "ca.crt", pki / "ca.key"),
            apiserver=CertPair(pki / "apiserver.crt", pki / "apiserver.key"),
            service_account_key=pki / "service-account.key",
            service_account_pub=pki / "service-account.pub",
            clients={},
        )
        self._start(state, "kube-apiserver", self._apiserver_args(state, certs))
        self._wait(self._readyz, "kube-apiserver", 90)

    def down(self) -> None:
        """Stop every component and remove the state directory."""
        state = self._load_state()
        if state is not None:
            for name in reversed(COMPONENTS):
                pid = state.pids.get(name)
                if pid is not None:
                    processes.stop(pid)
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- clients -----------------------------------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this cluster; raise CalledProcessError when ``check`` fails."""
        proc = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc

    def get_json(self, *args: str) -> dict[str, Any] | None:
        """``kubectl get ARGS -o json`` as a dict; None when the object does not exist (any other error raises)."""
        proc = self.kubectl("get", *args, "-o", "json", check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr:
                return None
            raise KubectlError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    def service_account_kubeconfig(self, namespace: str, account: str, path: Path) -> Path:
        """A kubeconfig at ``path`` that authenticates as ServiceAccount ``namespace/account`` (a 1 h token).

        Requests made with it are in the audit log (``audit_log``) under
        ``system:serviceaccount:NAMESPACE:ACCOUNT``; the admin kubeconfig's are not.
        """
        token = self.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
        user = f"system:serviceaccount:{namespace}:{account}"
        return write_token_kubeconfig(path, server=self.server, ca=self.pki_dir / "ca.crt", token=token, user=user)

    def env(self) -> dict[str, str]:
        """Environment for a client process: KUBECONFIG and the binaries on PATH."""
        return {"KUBECONFIG": str(self.kubeconfig), "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '')}"}

    # -- internals -------------------------------------------------------------------------------

    def _start(self, state: ClusterState, name: str, args: list[str]) -> None:
        state.pids[name] = processes.start(args, log=self.log_dir / f"{name}.log")
        self._save_state(state)

    def _wait(self, check: object, what: str, timeout: float) -> None:
        assert callable(check)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            state = self._load_state()
            if state is not None:
                for name, pid in state.pids.items():
                    if not processes.is_alive(pid):
                        log = self.log_dir / f"{name}.log"
                        raise ClusterError(
                            f"{name} exited during start-up; last lines of {log}:\n{processes.tail(log)}"
                        )
            time.sleep(0.25)
        raise ClusterError(f"{what} not ready after {timeout:.0f} s; logs are in {self.log_dir}")

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        ctx.load_cert_chain(str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key"))
        return ctx

    def _readyz(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.server}/readyz", context=self._ssl_context(), timeout=2) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError, ssl.SSLError, ClusterError):
            return False

    def _etcd_healthy(self, state: ClusterState) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{state.ports['etcd-client']}/health", timeout=2) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def _default_service_account_exists(self) -> bool:
        return self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0

    def _etcd_args(self, state: ClusterState) -> list[str]:
        client = f"http://127.0.0.1:{state.ports['etcd-client']}"
        peer = f"http://127.0.0.1:{state.ports['etcd-peer']}"
        return [
            str(self.bin_dir / "etcd"),
            "--name=default",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            # A throwaway test store: durability buys nothing and fsync costs seconds per test.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_args(self, state: ClusterState, certs: ClusterCerts) -> list[str]:
        t = self.timings
        return [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{state.ports['etcd-client']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # Loopback may not be advertised in the kubernetes Service endpoints; nothing here needs them.
            "--endpoint-reconciler-type=none",
            f"--secure-port={state.ports['kube-apiserver']}",
            f"--tls-cert-file={certs.apiserver.cert}",
            f"--tls-private-key-file={certs.apiserver.key}",
            f"--client-ca-file={certs.ca.cert}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={certs.service_account_pub}",
            f"--service-account-signing-key-file={certs.service_account_key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--allow-privileged=true",
            f"--default-not-ready-toleration-seconds={t.toleration_seconds}",
            f"--default-unreachable-toleration-seconds={t.toleration_seconds}",
            *audit_args(self.state_dir / "audit-policy.yaml", self.audit_log),
            "--v=1",
        ]

    def _controller_manager_args(self, state: ClusterState, certs: ClusterCerts, kubeconfig: Path) -> list[str]:
        t = self.timings
        return [
            str(self.bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={state.ports['kube-controller-manager']}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={certs.service_account_key}",
            f"--root-ca-file={certs.ca.cert}",
            f"--cluster-signing-cert-file={certs.ca.cert}",
            f"--cluster-signing-key-file={certs.ca.key}",
            f"--node-monitor-grace-period={t.node_monitor_grace_seconds}s",
            f"--node-monitor-period={t.node_monitor_period_seconds}s",
            "--v=1",
        ]

    def _scheduler_args(self, state: ClusterState, kubeconfig: Path) -> list[str]:
        return [
            str(self.bin_dir / "kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={state.ports['kube-scheduler']}",
            "--leader-elect=false",
            "--v=1",
        ]

    def _kwok_args(self, state: ClusterState, certs: ClusterCerts) -> list[str]:
        return [
            str(self.bin_dir / "kwok"),
            f"--kubeconfig={self.kubeconfig}",
            f"--config={self.bin_dir / 'kwok-stages.yaml'}",
            f"--manage-nodes-with-label-selector={KWOK_MANAGED_LABEL}={KWOK_MANAGED_VALUE}",
            # Pods the local pod runner executes for real (elastrain_dev.podrunner) are its to report.
            "--disregard-status-with-label-selector=podrunner.elastrain.dev/run=true",
            f"--node-lease-duration-seconds={self.timings.node_lease_seconds}",
            f"--server-address=127.0.0.1:{state.ports['kwok-server']}",
            f"--node-port={state.ports['kwok-node']}",
            "--node-ip=127.0.0.1",
            f"--tls-cert-file={certs.apiserver.cert}",
            f"--tls-private-key-file={certs.apiserver.key}",
        ]


def default_cluster() -> LocalCluster:
    """The developer's cluster (``make cluster-up``): clusters/$ELASTRAIN_CLUSTER (default dev) in the cache."""
    return LocalCluster(CACHE_ROOT / "clusters" / os.environ.get("ELASTRAIN_CLUSTER", "dev"))
