"""Certificate and key files given by flag, checked at start-up so that a bad file is named
with what is wrong with it (not an OpenSSL "PEM lib" line)."""
from __future__ import annotations

import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .errors import FlagError

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)-----END \1-----", re.S)
_KEY_TYPES = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")


def pem_problem(data: bytes, want: str) -> str | None:
    """Why ``data`` is not a usable PEM of ``want`` ("CERTIFICATE" for a certificate or
    bundle, "PRIVATE KEY" for a key), or None when it is."""
    if not data.strip():
        return "the file is empty"
    blocks = _BLOCK.findall(data)
    if not blocks:
        if b"-----BEGIN" in data:
            return "a PEM block has no matching END line"
        return f"no PEM block found (expected -----BEGIN {want}-----)"
    kinds = [k.decode() for k, _ in blocks]
    if want == "CERTIFICATE":
        certs = [i for i, k in enumerate(kinds) if k == "CERTIFICATE"]
        if not certs:
            return f"holds a PEM {kinds[0]!r} block, not a CERTIFICATE"
        for n, i in enumerate(certs, 1):
            block = b"-----BEGIN CERTIFICATE-----\n" + blocks[i][1] + b"-----END CERTIFICATE-----\n"
            try:
                x509.load_pem_x509_certificate(block)
            except ValueError:
                return f"CERTIFICATE block {n} of {len(certs)} is not a valid X.509 certificate"
        return None
    keys = [i for i, k in enumerate(kinds) if k in _KEY_TYPES or k == "ENCRYPTED PRIVATE KEY"]
    if not keys:
        return f"holds a PEM {kinds[0]!r} block, not a private key"
    kind, body = blocks[keys[0]]
    if kind == b"ENCRYPTED PRIVATE KEY":
        return "the private key is encrypted (a passphrase-protected key cannot be used)"
    try:
        serialization.load_pem_private_key(b"-----BEGIN %s-----\n%s-----END %s-----\n" % (kind, body, kind),
                                           password=None)
    except (ValueError, TypeError):
        return f"the {kind.decode()} block is not a valid private key"
    return None


def check_file(flag: str, path: str | None, want: str) -> bytes | None:
    """The content of ``path`` given with ``flag``; FlagError naming both and the problem."""
    if not path:
        return None
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise FlagError(f"{flag} {path}: no such file") from None
    except OSError as e:
        raise FlagError(f"{flag} {path}: {e.strerror}") from None
    problem = pem_problem(data, want)
    if problem:
        raise FlagError(f"{flag} {path}: {problem}")
    return data


def check_pair(cert_flag: str, cert_path: str | None, key_flag: str, key_path: str | None) -> None:
    """Both files valid, and the key is the certificate's."""
    cert = check_file(cert_flag, cert_path, "CERTIFICATE")
    key = check_file(key_flag, key_path, "PRIVATE KEY")
    if cert is None or key is None:
        return
    leaf = x509.load_pem_x509_certificate(cert)
    priv = serialization.load_pem_private_key(key, password=None)
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(serialization.Encoding.DER, pub) != \
            priv.public_key().public_bytes(serialization.Encoding.DER, pub):
        raise FlagError(f"{key_flag} {key_path}: the private key does not match the certificate in {cert_path}")


def check_pem_flags(args) -> None:
    """Every certificate and key flag of ``serve`` (run before anything uses them)."""
    check_pair("--tls-cert-file", args.tls_cert_file, "--tls-private-key-file", args.tls_private_key_file)
    for flag in ("client_ca_file", "requestheader_client_ca_file", "etcd_cafile"):
        check_file("--" + flag.replace("_", "-"), getattr(args, flag, None), "CERTIFICATE")
    check_pair("--etcd-certfile", getattr(args, "etcd_certfile", None),
               "--etcd-keyfile", getattr(args, "etcd_keyfile", None))
