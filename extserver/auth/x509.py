"""Client-certificate checks: which CA directly issued the TLS peer's leaf certificate (the
TLS layer verified the chain against the union of all trusted client CAs, so the
authenticators must still check *which* CA it was), and the identity it carries
(user = CN, groups = O, as kube's ``CommonNameUserConversion``)."""
from __future__ import annotations

import datetime as _dt
import hashlib
import time

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .user import CREDENTIAL_ID_KEY, UserInfo


def load_ca_bundle(pem: bytes) -> list[x509.Certificate]:
    """The certificates of a PEM bundle (ValueError when it holds none or is malformed)."""
    if not pem.strip():
        return []
    return x509.load_pem_x509_certificates(pem)


def _valid_now(cert: x509.Certificate, now: _dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def issued_by_any(leaf: x509.Certificate, cas: list[x509.Certificate]) -> x509.Certificate | None:
    """The CA among ``cas`` that directly issued ``leaf`` (issuer name, signature, both
    within their validity), or None."""
    now = _dt.datetime.now(_dt.timezone.utc)
    if not _valid_now(leaf, now):
        return None
    for ca in cas:
        try:
            leaf.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        if _valid_now(ca, now):
            return ca
    return None


def allows_client_auth(leaf: x509.Certificate) -> bool:
    """No extended key usage, or one that includes client authentication (Go verifies
    client certificates with ``ExtKeyUsageClientAuth``)."""
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.CLIENT_AUTH in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku


def verify_client_cert(leaf: x509.Certificate, cas: list[x509.Certificate]) -> str | None:
    """None when ``leaf`` is a client certificate directly issued by one of ``cas``;
    otherwise why not (for the log)."""
    if issued_by_any(leaf, cas) is None:
        return f"verifying certificate {cert_identifier(leaf)} failed: certificate signed by unknown authority"
    if not allows_client_auth(leaf):
        return f"verifying certificate {cert_identifier(leaf)} failed: certificate specifies an incompatible key usage"
    return None


def common_name(leaf: x509.Certificate) -> str:
    cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else ""


def cert_identifier(leaf: x509.Certificate) -> str:
    return f"SN={leaf.serial_number}, subject={leaf.subject.rfc4514_string()!r}"


def user_from_cert(leaf: x509.Certificate) -> UserInfo | None:
    """user = CN, groups = O, extra credential-id = ``X509SHA256=<hex of the DER>``; None
    when the CN is empty."""
    cn = common_name(leaf)
    if not cn:
        return None
    orgs = tuple(str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    fp = hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()
    return UserInfo(cn, groups=orgs, extra=((CREDENTIAL_ID_KEY, (f"X509SHA256={fp}",)),))


class X509Authenticator:
    """Authenticates by the verified TLS client certificate (DER bytes) against ``cas``;
    results are cached per certificate until the CAs change."""

    MAX_CACHE = 4096

    def __init__(self, cas: list[x509.Certificate]):
        self.cas = cas
        self._cache: dict[bytes, tuple[tuple[UserInfo | None, str | None], float]] = {}

    def set_cas(self, cas: list[x509.Certificate]) -> None:
        self.cas = cas
        self._cache.clear()

    def check_der(self, der: bytes | None) -> tuple[UserInfo | None, str | None]:
        """``(user, None)`` when authenticated; ``(None, None)`` when this authenticator has
        no opinion (no certificate, no CA, no CN); ``(None, error)`` when the certificate
        was not issued by the client CA (kube reports that as an authentication error)."""
        if not der or not self.cas:
            return None, None
        hit = self._cache.get(der)
        if hit is not None and time.time() <= hit[1]:
            return hit[0]
        try:
            leaf = x509.load_der_x509_certificate(der)
        except ValueError:
            return None, "malformed client certificate"
        err = verify_client_cert(leaf, self.cas)
        result = (None, err) if err else (user_from_cert(leaf), None)
        if len(self._cache) >= self.MAX_CACHE:
            self._cache.clear()
        self._cache[der] = (result, leaf.not_valid_after_utc.timestamp())
        return result

    def authenticate_der(self, der: bytes | None) -> UserInfo | None:
        return self.check_der(der)[0]
