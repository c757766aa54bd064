"""Client-certificate authentication: user = CN, groups = O, when the leaf was issued by
the client CA (checked with ``cryptography``; OpenSSL already verified the chain)."""
from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from .user import UserInfo


def load_ca_bundle(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem) if pem.strip() else []


def issued_by_any(leaf: x509.Certificate, cas: list[x509.Certificate]) -> x509.Certificate | None:
    """The CA among ``cas`` that directly issued ``leaf`` (signature and validity), or None."""
    import datetime as _dt
    now = _dt.datetime.now(_dt.timezone.utc)
    if not (leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc):
        return None
    for ca in cas:
        try:
            leaf.verify_directly_issued_by(ca)
        except Exception:
            continue
        if ca.not_valid_before_utc <= now <= ca.not_valid_after_utc:
            return ca
    return None


def user_from_cert(leaf: x509.Certificate) -> UserInfo | None:
    cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns or not cns[0].value:
        return None
    orgs = tuple(str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return UserInfo(str(cns[0].value), groups=orgs)


class X509Authenticator:
    """Authenticates by the verified TLS client certificate (DER bytes)."""

    def __init__(self, cas: list[x509.Certificate]):
        self.cas = cas
        self._cache: dict[bytes, UserInfo | None] = {}

    def set_cas(self, cas: list[x509.Certificate]) -> None:
        self.cas = cas
        self._cache.clear()

    def authenticate_der(self, der: bytes | None) -> UserInfo | None:
        if not der or not self.cas:
            return None
        if der in self._cache:
            return self._cache[der]
        try:
            leaf = x509.load_der_x509_certificate(der)
        except ValueError:
            return None
        user = user_from_cert(leaf) if issued_by_any(leaf, self.cas) is not None else None
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[der] = user
        return user
