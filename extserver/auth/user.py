"""The authenticated identity handed down the request chain (``user.Info``)."""
from __future__ import annotations

from dataclasses import dataclass

ANONYMOUS = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
AUTHENTICATED = "system:authenticated"
#: the ``extra`` key kube sets to identify the credential (``X509SHA256=<hex>`` for certificates)
CREDENTIAL_ID_KEY = "authentication.kubernetes.io/credential-id"


@dataclass(slots=True, frozen=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def extra_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.extra}

    def with_authenticated_group(self) -> "UserInfo":
        """Authenticated users always carry ``system:authenticated`` (as kube's
        ``AuthenticatedGroupAdder``: not for the anonymous user, nor when either
        all-users group is already present)."""
        if self.name == ANONYMOUS or AUTHENTICATED in self.groups or UNAUTHENTICATED in self.groups:
            return self
        return UserInfo(self.name, self.uid, self.groups + (AUTHENTICATED,), self.extra)


def anonymous() -> UserInfo:
    return UserInfo(ANONYMOUS, groups=(UNAUTHENTICATED,))
