"""Certificates: self-signed serving certs (reused on restart), a local CA and client certs.

EC P-256 keys (fast to generate), written with 0600 permissions in 0700 directories (files
and directories of an older deployment with looser modes are tightened when reused).
Never logged."""
from __future__ import annotations

import datetime as _dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(slots=True)
class CertKey:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def _name(cn: str, orgs: list[str] | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in (orgs or [])]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def new_ca(cn: str, days: int = 3650) -> CertKey:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(now + _dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return CertKey(cert, key)


def issue(ca: CertKey, cn: str, *, orgs: list[str] | None = None, dns: list[str] | None = None,
          ips: list[str] | None = None, server: bool = False, client: bool = False, days: int = 365) -> CertKey:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    eku = []
    if server:
        eku.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        eku.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    b = (x509.CertificateBuilder().subject_name(_name(cn, orgs)).issuer_name(ca.cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(now + _dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, content_commitment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                      crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False))
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in (dns or [])]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in (ips or [])]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return CertKey(b.sign(ca.key, hashes.SHA256()), key)


def tighten(path: Path, mode: int) -> None:
    """Remove any permission bit beyond ``mode`` from ``path`` (if it exists and is ours)."""
    try:
        st = path.stat()
        if st.st_mode & 0o777 & ~mode and st.st_uid == os.geteuid():
            os.chmod(path, st.st_mode & 0o777 & mode)
    except FileNotFoundError:
        pass


def ensure_private_dir(path: Path) -> None:
    """``path`` exists with mode 0700 (kube: etcd's data directory)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    tighten(path, 0o700)


def write_private(path: Path, data: bytes) -> None:
    ensure_private_dir(path.parent)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def load_pair(cert_path: Path, key_path: Path) -> CertKey:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    return CertKey(cert, key)  # type: ignore[arg-type]


def ensure_self_signed_serving(cert_dir: Path, *, hosts: list[str], ips: list[str]) -> tuple[Path, Path, Path]:
    """Create (or reuse) ``apiserver.crt``/``apiserver.key`` signed by a self-signed CA
    ``apiserver-ca.crt`` in ``cert_dir``. Returns (cert, key, ca) paths. The cert file holds
    the serving cert followed by its CA, as kube's self-signed generation writes it."""
    crt, key, ca_path = cert_dir / "apiserver.crt", cert_dir / "apiserver.key", cert_dir / "apiserver-ca.crt"
    if crt.exists() and key.exists() and ca_path.exists():
        _tighten_all(cert_dir, crt, key, ca_path)
        return crt, key, ca_path
    ca = new_ca(f"{hosts[0] if hosts else 'localhost'}-ca@{int(_now().timestamp())}")
    leaf = issue(ca, hosts[0] if hosts else "localhost", dns=hosts, ips=ips, server=True)
    cert_dir.mkdir(parents=True, exist_ok=True)
    write_private(key, leaf.key_pem)
    write_private(crt, leaf.cert_pem + ca.cert_pem)
    write_private(ca_path, ca.cert_pem)
    return crt, key, ca_path


def ensure_ca(directory: Path, name: str, cn: str) -> CertKey:
    c, k = directory / f"{name}.crt", directory / f"{name}.key"
    if c.exists() and k.exists():
        _tighten_all(directory, c, k)
        return load_pair(c, k)
    ca = new_ca(cn)
    write_private(k, ca.key_pem)
    write_private(c, ca.cert_pem)
    return ca


def ensure_client_cert(directory: Path, name: str, ca: CertKey, cn: str, orgs: list[str]) -> tuple[Path, Path]:
    c, k = directory / f"{name}.crt", directory / f"{name}.key"
    if not (c.exists() and k.exists()):
        leaf = issue(ca, cn, orgs=orgs, client=True)
        write_private(k, leaf.key_pem)
        write_private(c, leaf.cert_pem)
    else:
        _tighten_all(directory, c, k)
    return c, k


def _tighten_all(directory: Path, *files: Path) -> None:
    tighten(directory, 0o700)
    for f in files:
        tighten(f, 0o600)
