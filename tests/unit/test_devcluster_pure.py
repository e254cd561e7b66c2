"""Pure parts of the local-cluster tooling: node manifests and the generated PKI."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from elastrain_dev.certs import generate_certs
from elastrain_dev.cluster import KWOK_MANAGED_LABEL, KWOK_MANAGED_VALUE
from elastrain_dev.nodes import GPU_RESOURCE, build_node


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
