"""Local-mode authentication and authorization (no cluster: ``extserver serve`` on a laptop).

The rule: exactly one identity is accepted, the admin certificate the server wrote to
``<data-dir>/admin.crt`` (CN ``extserver-admin``, O ``system:masters``). It is pinned by
its SHA-256 over the DER bytes *and* must still verify against the local CA, so another
certificate signed with the local CA key -- whatever CN or O it carries, the admin's
included -- is refused with kube's 401. Pinning (rather than "CN + CA") means a copy of
the CA key alone never mints a second admin.

Authorization: the admin may do everything, and so may whoever the admin impersonates
(the admin's ``system:masters`` lets the impersonation filter switch identity; the local
mode has no RBAC to decide more). The anonymous user (only with an explicit
``--anonymous-auth=true``, e.g. for probes) reaches the always-allowed paths only: every
other request it makes is a 403."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Callable

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ..filters.requestinfo import RequestInfo
from ..machinery import errors as E
from .user import AUTHENTICATED, UserInfo
from .x509 import X509Authenticator

log = logging.getLogger("extserver.auth")

PeerDER = Callable[[web.Request], "bytes | None"]


class LocalAuth:
    """The local-mode authenticator (``authenticate``) and authorizer (``authorize``)."""

    def __init__(self, ca: x509.Certificate, admin_cert: x509.Certificate, peer_der: PeerDER):
        self._x509 = X509Authenticator([ca])
        self.admin_fingerprint = hashlib.sha256(admin_cert.public_bytes(Encoding.DER)).digest()
        self.peer_der = peer_der

    @classmethod
    def from_files(cls, ca: x509.Certificate, admin_crt: Path, peer_der: PeerDER) -> "LocalAuth":
        return cls(ca, x509.load_pem_x509_certificate(admin_crt.read_bytes()), peer_der)

    def check_der(self, der: bytes | None) -> tuple[UserInfo | None, str | None]:
        """``(admin, None)`` for the pinned certificate; ``(None, None)`` without a
        certificate; ``(None, why)`` for any other certificate."""
        if not der:
            return None, None
        user, err = self._x509.check_der(der)
        if user is None:
            return None, err or "the client certificate has no common name"
        if hashlib.sha256(der).digest() != self.admin_fingerprint:
            return None, f"the client certificate of {user.name!r} is not the local admin certificate"
        return user, None

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        """The admin; None without a certificate (anonymous, when enabled); 401 for any
        other certificate."""
        user, err = self.check_der(self.peer_der(request))
        if err:
            log.warning("unable to authenticate the request to %s: %s", request.path, err)
            raise E.Unauthorized()
        return user

    async def authorize(self, user: UserInfo, info: RequestInfo) -> tuple[bool, str]:
        # impersonated users carry system:authenticated unless the admin asked for
        # system:unauthenticated: those, like the anonymous user, are refused
        return AUTHENTICATED in user.groups, ""
