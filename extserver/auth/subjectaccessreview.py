"""Delegated authorization: a ``SubjectAccessReview`` (``authorization.k8s.io/v1``) per
distinct request, with allow and deny TTL caches, as k8s.io/apiserver's webhook
authorizer; and the union in front of it (always-allow groups, always-allow paths)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from ..filters.requestinfo import RequestInfo
from .cache import TTLCache
from .kubeclient import DEFAULT_WEBHOOK_BACKOFF, ApiError, Backoff, KubeClient, post_review
from .user import UserInfo

log = logging.getLogger("extserver.auth")

SUBJECTACCESSREVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
#: requests whose attributes are this long are reviewed every time (kube's limit)
MAX_CACHED_ATTR_SIZE = 10000

ALLOW, DENY, NO_OPINION = "Allow", "Deny", "NoOpinion"


@dataclass(frozen=True, slots=True)
class Decision:
    decision: str  # Allow | Deny | NoOpinion
    reason: str = ""
    error: str | None = None  # the authorizer could not decide (kube answers 500)

    @property
    def allowed(self) -> bool:
        return self.decision == ALLOW


def review_spec(user: UserInfo, info: RequestInfo) -> dict:
    """The ``spec`` of the review, with Go's ``omitempty``: empty fields are left out."""
    spec: dict = {}
    if user.name:
        spec["user"] = user.name
    if user.uid:
        spec["uid"] = user.uid
    if user.groups:
        spec["groups"] = list(user.groups)
    if user.extra:
        spec["extra"] = {k: list(v) for k, v in user.extra}
    if info.is_resource_request:
        attrs = {"namespace": info.namespace, "verb": info.verb, "group": info.api_group,
                 "version": info.api_version, "resource": info.resource, "subresource": info.subresource,
                 "name": info.name}
        spec["resourceAttributes"] = {k: v for k, v in attrs.items() if v}
    else:
        spec["nonResourceAttributes"] = {k: v for k, v in (("path", info.path), ("verb", info.verb)) if v}
    return spec


def _cache_key(user: UserInfo, info: RequestInfo) -> tuple:
    """What the review's spec says, as a tuple (as kube keys its cache by the spec's JSON,
    whose ``extra`` map is sorted): the spec itself is built only on a cache miss."""
    extra = tuple(sorted(user.extra)) if user.extra else ()
    if info.is_resource_request:
        return (user.name, user.uid, user.groups, extra, info.namespace, info.verb, info.api_group,
                info.api_version, info.resource, info.subresource, info.name)
    return (user.name, user.uid, user.groups, extra, info.path, info.verb)


def _cacheable(info: RequestInfo) -> bool:
    size = sum(len(x) for x in (info.namespace, info.verb, info.api_group, info.api_version, info.resource,
                                info.subresource, info.name, info.path))
    return size < MAX_CACHED_ATTR_SIZE


class SubjectAccessReviewAuthorizer:
    def __init__(self, client: KubeClient, *, allow_ttl: float = 10.0, deny_ttl: float = 10.0,
                 timeout: float = 10.0, backoff: Backoff = DEFAULT_WEBHOOK_BACKOFF,
                 clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.allow_ttl = allow_ttl
        self.deny_ttl = deny_ttl
        self.timeout = timeout
        self.backoff = backoff
        self.cache: TTLCache[Decision] = TTLCache(clock=clock)
        self.reviews_sent = 0
        self.review_codes: dict[str, int] = {}

    async def authorize(self, user: UserInfo, info: RequestInfo) -> Decision:
        key = _cache_key(user, info)
        cacheable = _cacheable(info)
        try:
            return await self.cache.get_or_load(
                key if cacheable else (key, object()), lambda: self._review(review_spec(user, info)),
                lambda d: 0.0 if not cacheable or d.error else (self.allow_ttl if d.allowed else self.deny_ttl))
        except ApiError as e:
            log.error("failed to make webhook authorizer request: %s", e)
            return Decision(NO_OPINION, "", str(e))

    async def _review(self, spec: dict) -> Decision:
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "metadata": {},
                "spec": spec}
        st = (await post_review(self.client, SUBJECTACCESSREVIEWS, body, timeout=self.timeout,
                                backoff=self.backoff, on_attempt=self._attempted)).get("status") or {}
        allowed, denied, reason = bool(st.get("allowed")), bool(st.get("denied")), str(st.get("reason") or "")
        if allowed and denied:
            return Decision(DENY, reason, "webhook subject access review returned both allow and deny response")
        if denied:
            return Decision(DENY, reason)
        if allowed:
            return Decision(ALLOW, reason)
        return Decision(NO_OPINION, reason)

    def _attempted(self, code: str) -> None:
        self.reviews_sent += 1
        self._count(code)

    def _count(self, code: str) -> None:
        self.review_codes[code] = self.review_codes.get(code, 0) + 1


class PathAuthorizer:
    """``--authorization-always-allow-paths``: exact paths, or prefixes ending in ``*``;
    non-resource requests only."""

    def __init__(self, paths: list[str]):
        self.exact: set[str] = set()
        self.prefixes: list[str] = []
        for p in paths:
            p = p[1:] if p.startswith("/") else p
            if not p:
                self.exact.add("")
                continue
            if "*" in p[:-1]:
                raise ValueError(f"only trailing * allowed in {p!r}")
            if p.endswith("*"):
                self.prefixes.append(p[:-1])
            else:
                self.exact.add(p)

    def allows(self, info: RequestInfo) -> bool:
        if info.is_resource_request:
            return False
        p = info.path[1:] if info.path.startswith("/") else info.path
        return p in self.exact or any(p.startswith(x) for x in self.prefixes)
