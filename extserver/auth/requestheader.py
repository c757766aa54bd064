"""Request-header (front-proxy) authentication, as ``headerrequest`` in k8s.io/apiserver.

The ``X-Remote-*`` headers are an identity only when the TLS client certificate was
directly issued by the request-header CA and (when the allowed-names list is non-empty)
its CN is allowed. The checks on the certificate are in :meth:`RequestHeaderAuthenticator.check`;
the header parsing in :func:`user_from_headers`."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import unquote

from cryptography import x509
from multidict import CIMultiDict, CIMultiDictProxy

from .user import UserInfo
from .x509 import common_name, verify_client_cert

#: every header the aggregator may set, stripped even when not configured
REMOTE_PREFIX = "x-remote-"


@dataclass(frozen=True, slots=True)
class RequestHeaderConfig:
    """Where the front-proxy identity is read from, and whom to believe."""

    cas: tuple[x509.Certificate, ...] = ()
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    uid_headers: tuple[str, ...] = ()
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_prefixes: tuple[str, ...] = ("X-Remote-Extra-",)
    #: the bundle as received (what the TLS layer must trust for this authenticator)
    ca_pem: bytes = field(default=b"", compare=False)


def _first(headers: CIMultiDictProxy[str] | Mapping[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        v = headers.get(name, "")
        if v:
            return v
    return ""


def user_from_headers(headers: CIMultiDictProxy[str], cfg: RequestHeaderConfig) -> UserInfo | None:
    """The identity in the headers: the first non-empty username header (none: no
    identity), every non-empty value of every group header, and for each extra prefix
    every header starting with it (key lower-cased, then %-unescaped)."""
    name = _first(headers, cfg.username_headers)
    if not name:
        return None
    uid = _first(headers, cfg.uid_headers)
    groups: list[str] = []
    for h in cfg.group_headers:
        groups.extend(v for v in headers.getall(h, []) if v)
    extra: dict[str, list[str]] = {}
    for prefix in cfg.extra_prefixes:
        lp = prefix.lower()
        for h, v in headers.items():
            if h.lower().startswith(lp):
                extra.setdefault(unescape_extra_key(h[len(prefix):].lower()), []).append(v)
    return UserInfo(name, uid, tuple(groups), tuple((k, tuple(v)) for k, v in extra.items()))


def unescape_extra_key(raw: str) -> str:
    """An extra key from a header name (already lower-cased), %-decoded as Go's
    ``url.PathUnescape``; kept as sent when that fails (kube records it anyway)."""
    return unquote(raw) if _unescapable(raw) else raw


def _unescapable(s: str) -> bool:
    """Go's ``url.PathUnescape`` fails on a ``%`` not followed by two hex digits."""
    i = s.find("%")
    while i != -1:
        if len(s) < i + 3 or any(c not in "0123456789abcdefABCDEF" for c in s[i + 1:i + 3]):
            return False
        i = s.find("%", i + 3)
    return True


def strip_auth_headers(headers: CIMultiDictProxy[str], cfg: RequestHeaderConfig | None) -> CIMultiDict[str]:
    """``headers`` without ``Authorization``, every ``X-Remote-*`` header and every
    configured request-header name / extra prefix."""
    names = {"authorization"}
    prefixes = [REMOTE_PREFIX]
    if cfg is not None:
        names.update(h.lower() for h in cfg.username_headers + cfg.uid_headers + cfg.group_headers)
        prefixes += [p.lower() for p in cfg.extra_prefixes]
    out: CIMultiDict[str] = CIMultiDict()
    for k, v in headers.items():
        lk = k.lower()
        if lk in names or any(lk.startswith(p) for p in prefixes):
            continue
        out.add(k, v)
    return out


class RequestHeaderAuthenticator:
    """The certificate gate in front of :func:`user_from_headers` (kube's
    ``x509request.Verifier``). The verdict per certificate is cached until the config
    changes."""

    MAX_CACHE = 4096

    def __init__(self, cfg: RequestHeaderConfig):
        self.cfg = cfg
        self._cache: dict[bytes, tuple[str | None, float]] = {}

    def check(self, der: bytes | None) -> tuple[bool, str | None]:
        """``(True, None)``: believe the headers. ``(False, None)``: no opinion (no client
        certificate, or no request-header CA configured). ``(False, error)``: a certificate
        that is not a valid front-proxy certificate (kube: an authentication error)."""
        if not der or not self.cfg.cas:
            return False, None
        hit = self._cache.get(der)
        if hit is None or time.time() > hit[1]:
            try:
                leaf = x509.load_der_x509_certificate(der)
            except ValueError:
                return False, "malformed client certificate"
            err = verify_client_cert(leaf, list(self.cfg.cas))
            if err is None and self.cfg.allowed_names:
                cn = common_name(leaf)
                if cn not in self.cfg.allowed_names:
                    err = f"x509: subject with cn={cn} is not in the allowed list"
            if len(self._cache) >= self.MAX_CACHE:
                self._cache.clear()
            hit = (err, leaf.not_valid_after_utc.timestamp())
            self._cache[der] = hit
        return hit[0] is None, hit[0]

    def authenticate(self, der: bytes | None, headers: CIMultiDictProxy[str]) -> tuple[UserInfo | None, str | None]:
        ok, err = self.check(der)
        if not ok:
            return None, err
        return user_from_headers(headers, self.cfg), None
