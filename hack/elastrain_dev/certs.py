"""Certificates for the local control plane: one CA, the serving cert, client certs, the SA key.

Everything is generated with `cryptography` into the cluster's state directory on first start.
ECDSA P-256 keys keep generation instant.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class CertPair:
    """Paths of a PEM certificate and its private key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ClusterCerts:
    """All the PKI the control plane needs, as files."""

    ca: CertPair
    apiserver: CertPair
    service_account_key: Path
    service_account_pub: Path
    clients: dict[str, CertPair]


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _issue(
    *,
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate | None,
    ca_key: ec.EllipticCurvePrivateKey,
    server: bool,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject if ca_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if ca_cert is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def generate_certs(directory: Path, *, clients: dict[str, tuple[str, str | None]]) -> ClusterCerts:
    """Write a CA, the API server's serving cert, the given client certs and the SA key pair.

    ``clients`` maps a file stem to (common name, organization), e.g.
    ``{"admin": ("kubernetes-admin", "system:masters")}``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _new_key()
    ca_cert = _issue(subject=_name("elastrain-local-ca"), key=ca_key, ca_cert=None, ca_key=ca_key, server=False)
    ca = CertPair(directory / "ca.crt", directory / "ca.key")
    _write_cert(ca_cert, ca.cert)
    _write_key(ca_key, ca.key)

    def issue(stem: str, subject: x509.Name, *, server: bool, sans: list[x509.GeneralName] | None = None) -> CertPair:
        key = _new_key()
        cert = _issue(subject=subject, key=key, ca_cert=ca_cert, ca_key=ca_key, server=server, sans=sans)
        pair = CertPair(directory / f"{stem}.crt", directory / f"{stem}.key")
        _write_cert(cert, pair.cert)
        _write_key(key, pair.key)
        return pair

    apiserver = issue(
        "apiserver",
        _name("kube-apiserver"),
        server=True,
        sans=[
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ],
    )
    client_pairs = {stem: issue(stem, _name(cn, org), server=False) for stem, (cn, org) in clients.items()}
    sa_key = _new_key()
    sa_key_path = directory / "service-account.key"
    sa_pub_path = directory / "service-account.pub"
    _write_key(sa_key, sa_key_path)
    sa_pub_path.write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return ClusterCerts(
        ca=ca,
        apiserver=apiserver,
        service_account_key=sa_key_path,
        service_account_pub=sa_pub_path,
        clients=client_pairs,
    )
