"""The authenticated identity handed down the request chain (``user.Info``)."""
from __future__ import annotations

from dataclasses import dataclass, field

ANONYMOUS = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
AUTHENTICATED = "system:authenticated"


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
        """Authenticated users always carry ``system:authenticated`` (as kube adds it)."""
        if self.name == ANONYMOUS or AUTHENTICATED in self.groups:
            return self
        return UserInfo(self.name, self.uid, self.groups + (AUTHENTICATED,), self.extra)


def anonymous() -> UserInfo:
    return UserInfo(ANONYMOUS, groups=(UNAUTHENTICATED,))
