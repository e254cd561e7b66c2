"""Pure parts of the local-cluster tooling: node manifests, the generated PKI, port choice."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from elastrain_dev import processes
from elastrain_dev.certs import generate_certs
from elastrain_dev.cluster import KWOK_MANAGED_LABEL, KWOK_MANAGED_VALUE
from elastrain_dev.nodes import GPU_RESOURCE, build_node
from elastrain_dev.podrunner import JOB_RAY_PORTS, job_ray_port, termination_message
from elastrain_dev.processes import STATIC_PORTS, ephemeral_ports, free_port


@pytest.mark.parametrize("gpus", [0, 1, 8])
def test_node_manifest_carries_gpu_capacity_and_kwok_label(gpus: int) -> None:
    node = build_node("n1", gpus=gpus)
    assert node["status"]["capacity"][GPU_RESOURCE] == str(gpus)
    assert node["status"]["allocatable"] == node["status"]["capacity"]
    assert node["metadata"]["labels"][KWOK_MANAGED_LABEL] == KWOK_MANAGED_VALUE
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"
    assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == ("true" if gpus else "false")


def test_serving_cert_verifies_against_the_ca_for_loopback(tmp_path: Path) -> None:
    certs = generate_certs(tmp_path, clients={"admin": ("kubernetes-admin", "system:masters")})
    ca = x509.load_pem_x509_certificate(certs.ca.cert.read_bytes())
    leaf = x509.load_pem_x509_certificate(certs.apiserver.cert.read_bytes())
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(x509.DNSName("localhost"))
    chain = verifier.verify(leaf, [])
    assert chain[-1] == ca
    admin = x509.load_pem_x509_certificate(certs.clients["admin"].cert.read_bytes())
    orgs = [a.value for a in admin.subject.get_attributes_for_oid(x509.oid.NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters"]
    assert oct(certs.clients["admin"].key.stat().st_mode & 0o777) == "0o600"


def test_free_port_is_bindable_and_outside_the_kernels_ephemeral_range() -> None:
    ephemeral = ephemeral_ports()
    ports = {free_port() for _ in range(20)}
    assert len(ports) > 1, "ports are drawn at random, not one fixed port"
    for port in ports:
        assert port in STATIC_PORTS
        assert port not in ephemeral
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_free_port_skips_a_port_something_listens_on(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = held.getsockname()[1]
        monkeypatch.setattr(processes, "STATIC_PORTS", range(busy, busy + 1))
        monkeypatch.setattr(processes, "ephemeral_ports", lambda: range(0))
        # The only candidate is taken: the kernel's pick, which is not the busy port.
        assert processes.free_port() != busy


def test_termination_message_as_a_kubelet_reports_it(tmp_path: Path) -> None:
    written, log = tmp_path / "termination-log", tmp_path / "container.log"
    log.write_text("".join(f"line {i}\n" for i in range(200)))
    # Nothing written: the log's last 80 lines, only for a failed container with FallbackToLogsOnError.
    assert termination_message(written, log, fallback_to_logs=False) == ""
    tail = termination_message(written, log, fallback_to_logs=True)
    assert tail.splitlines() == [f"line {i}" for i in range(120, 200)]
    # What the container wrote wins, cut to 4096 bytes.
    written.write_text("trainer: " + "x" * 5000)
    assert termination_message(written, log, fallback_to_logs=True) == ("trainer: " + "x" * 5000)[:4096]


def test_a_jobs_ray_port_is_stable_in_its_range_and_differs_between_jobs() -> None:
    ports = {job_ray_port("ns", f"job-{i}") for i in range(200)}
    assert job_ray_port("ns", "job-1") == job_ray_port("ns", "job-1")
    assert all(p in JOB_RAY_PORTS for p in ports)
    assert len(ports) > 150  # spread over the range, not one port for every job
    assert not {8265, 8765, 6379} & set(JOB_RAY_PORTS)  # Ray's dashboard, the progress port, the contract's
