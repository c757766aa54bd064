"""Test certificates: the CAs of a cluster (front-proxy CA, client CA) and client
certificates written to files for HTTP clients."""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from extserver.server import certs
from extserver.server.certs import CertKey


@dataclass
class ClientCert:
    ck: CertKey
    cert_file: Path
    key_file: Path

    @property
    def pair(self) -> tuple[str, str]:
        return str(self.cert_file), str(self.key_file)

    @property
    def der(self) -> bytes:
        return self.ck.cert.public_bytes(Encoding.DER)


def write_ca(directory: Path, name: str, ca: CertKey) -> Path:
    path = Path(directory) / f"{name}.crt"
    certs.write_private(path, ca.cert_pem)
    return path


def client_cert(directory: Path, name: str, ca: CertKey, cn: str, orgs: list[str] | None = None,
                *, server_only: bool = False) -> ClientCert:
    """A certificate issued by ``ca`` (client auth, or server auth only) in two files."""
    return _save(directory, name, certs.issue(ca, cn, orgs=orgs, client=not server_only, server=server_only))


def _save(directory: Path, name: str, ck: CertKey) -> ClientCert:
    c, k = Path(directory) / f"{name}.crt", Path(directory) / f"{name}.key"
    certs.write_private(c, ck.cert_pem)
    certs.write_private(k, ck.key_pem)
    return ClientCert(ck, c, k)


def forged_self_signed(directory: Path, name: str, ca: CertKey) -> ClientCert:
    """A self-signed certificate whose subject (and issuer) copy ``ca``'s subject: same
    name, another key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(ca.cert.subject).issuer_name(ca.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(now + _dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return _save(directory, name, CertKey(cert, key))


def leaf_of_forged_ca(directory: Path, name: str, ca: CertKey, cn: str) -> ClientCert:
    """A client certificate for ``cn`` signed by a new self-signed CA that copies ``ca``'s
    subject name exactly (issuer name right, signature wrong)."""
    fake_key = ec.generate_private_key(ec.SECP256R1())
    now = _dt.datetime.now(_dt.timezone.utc)
    fake_ca_cert = (x509.CertificateBuilder().subject_name(ca.cert.subject).issuer_name(ca.cert.subject)
                    .public_key(fake_key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(now + _dt.timedelta(days=1))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                    .sign(fake_key, hashes.SHA256()))
    return client_cert(directory, name, CertKey(fake_ca_cert, fake_key), cn)
