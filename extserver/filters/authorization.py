"""Authorization: may this user do this? ``authorize(user, info)`` returns
``(allowed, reason)`` or raises a ``StatusError`` (a review that failed). Non-resource
paths in ``always_allow_paths`` (exact, or a prefix when the entry ends in ``*``) skip it.
A denial is kube-apiserver's 403 ``Status``."""
from __future__ import annotations

from typing import Awaitable, Callable, Iterable

from aiohttp import web

from ..auth.user import UserInfo
from ..machinery import errors as E
from .chain import Handler, RequestContext, status_response
from .requestinfo import RequestInfo

Authorize = Callable[[UserInfo, RequestInfo], Awaitable[tuple[bool, str]]]

DECISION_ANNOTATION = "authorization.k8s.io/decision"
REASON_ANNOTATION = "authorization.k8s.io/reason"


def forbidden_message(user: UserInfo, info: RequestInfo, reason: str = "") -> E.StatusError:
    """kube-apiserver's 403 for a denied request (``ForbiddenStatusError``): the
    authorizer's reason, when it gave one, follows the message."""
    tail = f": {reason}" if reason else ""
    if info.is_resource_request:
        res = info.resource + (f"/{info.subresource}" if info.subresource else "")
        msg = f'User "{user.name}" cannot {info.verb} resource "{res}" in API group "{info.api_group}"'
        msg += f' in the namespace "{info.namespace}"' if info.namespace else " at the cluster scope"
        q = f"{info.resource}.{info.api_group}" if info.api_group else info.resource
        full = f'{q} "{info.name}" is forbidden: {msg}' if info.name else f"{q} is forbidden: {msg}"
        return E.StatusError(full + tail, code=403, reason="Forbidden", name=info.name, group=info.api_group,
                             kind=info.resource)
    return E.StatusError(f'forbidden: User "{user.name}" cannot {info.verb} path "{info.path}"{tail}',
                         code=403, reason="Forbidden")


def path_matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """kube's ``--authorization-always-allow-paths`` matching: exact, or prefix for ``p*``."""
    exact: set[str] = set()
    prefixes: list[str] = []
    for p in patterns:
        if "*" in p[:-1]:
            raise ValueError(f"only a trailing * is allowed in a path, got {p!r}")
        if p.endswith("*"):
            prefixes.append(p[:-1])
        else:
            exact.add(p)
    pre = tuple(prefixes)
    return lambda path: path in exact or (bool(pre) and path.startswith(pre))


def with_authorization(handler: Handler, authorize: Authorize | None, *,
                       always_allow_paths: Iterable[str] = ()) -> Handler:
    if authorize is None:
        return handler
    allowed_path = path_matcher(always_allow_paths)

    async def authorization(ctx: RequestContext) -> web.StreamResponse:
        info = ctx.info
        if not info.is_resource_request and allowed_path(info.path):
            return await handler(ctx)
        user = ctx.user
        assert user is not None  # authentication ran
        try:
            allowed, reason = await authorize(user, info)
        except E.StatusError as e:
            return status_response(e)
        if ctx.audit is not None:
            ctx.audit.annotations[DECISION_ANNOTATION] = "allow" if allowed else "forbid"
            ctx.audit.annotations[REASON_ANNOTATION] = reason
        if not allowed:
            return status_response(forbidden_message(user, info))
        return await handler(ctx)

    return authorization
