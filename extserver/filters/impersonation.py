"""Impersonation (kube's ``WithImpersonation``): a request may ask to act as another
identity with ``Impersonate-User``, ``Impersonate-Group`` (repeated), ``Impersonate-Uid``
and ``Impersonate-Extra-<key>`` (key lower-cased, then %-decoded). Each requested
attribute is authorized for the authenticated user with the verb ``impersonate`` through
the server's authorizer, in kube's order (user or service account, groups, extras, uid):

- ``Impersonate-User: system:serviceaccount:<ns>:<name>``: ``serviceaccounts`` in namespace
  ``<ns>``, group ``""``; any other user: ``users``, group ``""``;
- ``Impersonate-Group``: ``groups``, group ``""``;
- ``Impersonate-Extra-<key>``: ``userextras/<key>``, group ``authentication.k8s.io``;
- ``Impersonate-Uid``: ``uids``, group ``authentication.k8s.io``;

version ``v1``, name = the value. The first denial is kube's 403 (``users "bob" is
forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster
scope``, then ``: <reason>`` when the authorizer gave one); an authorizer error is a
denial too. Groups, extras or a uid without a user is kube's plain-text 500. When
all are allowed, the request continues as the new user (a service account gets its groups
when none are given; ``system:authenticated`` is added unless an all-users group was
asked for, ``system:unauthenticated`` for ``system:anonymous``), the audit event records
it as ``impersonatedUser``, and the impersonation headers are removed.

It sits after authentication and audit and before authorization, as in kube's
``DefaultBuildHandlerChain``: the request's own authorization is for the new user."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from ..auth.requestheader import unescape_extra_key
from ..auth.user import ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED, UserInfo
from ..machinery import errors as E
from ..machinery.validation import go_quote, is_dns1123_label, is_dns1123_subdomain
from .authorization import Authorize, forbidden_message
from .chain import Handler, RequestContext, status_response
from .httplog import V
from .requestinfo import RequestInfo

log = logging.getLogger("extserver.impersonation")

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UID_HEADER = "Impersonate-Uid"
EXTRA_PREFIX = "Impersonate-Extra-"
SA_PREFIX = "system:serviceaccount:"
AUTHN_V1 = "authentication.k8s.io/v1"
_EXTRA_PREFIX_LOWER = EXTRA_PREFIX.lower()
_SINGLE_HEADERS = frozenset(h.lower() for h in (USER_HEADER, GROUP_HEADER, UID_HEADER))

# kind -> (API group, version, resource) of the attributes authorized for it
_RESOURCES = {"ServiceAccount": ("", "v1", "serviceaccounts"), "User": ("", "v1", "users"),
              "Group": ("", "v1", "groups"), "UserExtra": ("authentication.k8s.io", "v1", "userextras"),
              "UID": ("authentication.k8s.io", "v1", "uids")}


@dataclass(frozen=True, slots=True)
class Target:
    """One thing asked to be impersonated (kube builds a ``v1.ObjectReference`` per one)."""

    kind: str
    name: str
    namespace: str = ""
    extra_key: str = ""  # UserExtra: the extra's key (kube keeps it in FieldPath)

    def attributes(self) -> RequestInfo:
        group, version, resource = _RESOURCES[self.kind]
        return RequestInfo(path="", verb="impersonate", is_resource_request=True, api_group=group,
                           api_version=version, namespace=self.namespace, resource=resource,
                           subresource=self.extra_key, name=self.name)

    def go_repr(self) -> str:
        """Go's ``%v`` of the ObjectReference (Kind Namespace Name UID APIVersion
        ResourceVersion FieldPath), for kube's error text."""
        api_version = AUTHN_V1 if self.kind in ("UserExtra", "UID") else ""
        return "{" + " ".join((self.kind, self.namespace, self.name, "", api_version, "", self.extra_key)) + "}"


class WithoutUser(Exception):
    """Groups, extras or a uid asked for without a user."""


def split_service_account(username: str) -> tuple[str, str] | None:
    """``serviceaccount.SplitUsername``: (namespace, name) of ``system:serviceaccount:<ns>:<name>``
    with a DNS-1123 label namespace and a DNS-1123 subdomain name; else None."""
    if not username.startswith(SA_PREFIX):
        return None
    parts = username[len(SA_PREFIX):].split(":")
    if len(parts) != 2 or is_dns1123_label(parts[0]) or is_dns1123_subdomain(parts[1]):
        return None
    return parts[0], parts[1]


def _is_extra(name: str) -> bool:
    return name.lower().startswith(_EXTRA_PREFIX_LOWER)


def requested_targets(headers: CIMultiDictProxy[str]) -> list[Target]:
    """What the headers ask to impersonate, in kube's order; [] for none. Raises
    :class:`WithoutUser` (its message is kube's) for groups/extras/uid without a user."""
    targets: list[Target] = []
    user = headers.get(USER_HEADER, "")
    if user:
        sa = split_service_account(user)
        targets.append(Target("ServiceAccount", sa[1], sa[0]) if sa else Target("User", user))
    groups = headers.getall(GROUP_HEADER, [])
    targets.extend(Target("Group", g) for g in groups)
    has_extra = False
    for name, value in headers.items():
        if _is_extra(name):
            has_extra = True
            targets.append(Target("UserExtra", value, extra_key=unescape_extra_key(name[len(EXTRA_PREFIX):].lower())))
    uid = headers.get(UID_HEADER, "")
    if uid:
        targets.append(Target("UID", uid))
    if (groups or has_extra or uid) and not user:
        raise WithoutUser(f"requested [{' '.join(t.go_repr() for t in targets)}] without impersonating a user")
    return targets


def impersonated_user(targets: list[Target], groups_specified: bool) -> UserInfo:
    """The identity the (authorized) targets describe, with kube's all-users group rules."""
    name, uid = "", ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    for t in targets:
        if t.kind == "ServiceAccount":
            name = f"{SA_PREFIX}{t.namespace}:{t.name}"
            if not groups_specified:
                groups = ["system:serviceaccounts", f"system:serviceaccounts:{t.namespace}"]
        elif t.kind == "User":
            name = t.name
        elif t.kind == "Group":
            groups.append(t.name)
        elif t.kind == "UserExtra":
            extra.setdefault(t.extra_key, []).append(t.name)
        else:
            uid = t.name
    if name != ANONYMOUS:
        if AUTHENTICATED not in groups and UNAUTHENTICATED not in groups:
            groups.append(AUTHENTICATED)
    elif UNAUTHENTICATED not in groups:
        groups.append(UNAUTHENTICATED)
    return UserInfo(name, uid, tuple(groups), tuple((k, tuple(v)) for k, v in extra.items()))


def _is_impersonation_header(name: str) -> bool:
    n = name.lower()
    return n in _SINGLE_HEADERS or n.startswith(_EXTRA_PREFIX_LOWER)


def internal_error(request: web.Request, why: str) -> web.Response:
    """kube's ``responsewriters.InternalError``: a plain-text 500 (Go's ``http.Error``),
    ``&``, ``<``, ``>`` escaped."""
    text = f"Internal Server Error: {go_quote(request.raw_path)}: {why}"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return web.Response(text=text + "\n", status=500, content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


def with_impersonation(handler: Handler, authorize: Authorize | None) -> Handler:
    """The impersonation filter (see the module doc). With no authorizer (the server
    authorizes nothing) every impersonation is allowed."""

    async def impersonation(ctx: RequestContext) -> web.StreamResponse:
        headers = ctx.request.headers
        try:
            targets = requested_targets(headers)
        except WithoutUser as e:
            log.log(V(4), "%s", e)
            return internal_error(ctx.request, str(e))
        if not targets:
            return await handler(ctx)
        requestor = ctx.user
        assert requestor is not None  # authentication ran
        for t in targets:
            attrs = t.attributes()
            allowed, reason = True, ""
            if authorize is not None:
                try:
                    allowed, reason = await authorize(requestor, attrs)
                except E.StatusError:  # kube: an authorizer error is a denial here
                    allowed, reason = False, ""
            if not allowed:
                err = forbidden_message(requestor, attrs, reason)
                err.headers["X-Content-Type-Options"] = "nosniff"
                return status_response(err)
        user = impersonated_user(targets, GROUP_HEADER in headers)
        log.log(V(4), "%s is impersonating %s", _user_string(requestor), _user_string(user))
        ctx.user = user
        if ctx.audit is not None:
            ctx.audit.log_impersonated_user(user)
        kept: CIMultiDict[str] = CIMultiDict((k, v) for k, v in headers.items() if not _is_impersonation_header(k))
        ctx.request = ctx.request.clone(headers=kept)
        return await handler(ctx)

    return impersonation


def _user_string(u: UserInfo) -> str:
    return (u.name or "<empty>") + (f"[{','.join(u.groups)}]" if u.groups else "")
