"""Bearer tokens checked with a ``TokenReview`` (``authentication.k8s.io/v1``) against the
main apiserver, as k8s.io/apiserver's webhook token authenticator behind its cache.

The cache key is an HMAC-SHA256 of the token under a per-process random key, so the
token itself is neither stored nor logged. Answers (authenticated or not) are kept for
``ttl`` seconds; errors (the apiserver unreachable, ``status.error``) are not."""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable

from .cache import TTLCache
from .kubeclient import DEFAULT_WEBHOOK_BACKOFF, ApiError, Backoff, KubeClient, post_review
from .user import UserInfo

log = logging.getLogger("extserver.auth")

TOKENREVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
INVALID_TOKEN = "invalid bearer token"


def bearer_token(authorization: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header ("" when there is none)."""
    parts = authorization.strip().split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer":
        return ""
    return parts[1]


@dataclass(frozen=True, slots=True)
class TokenResult:
    user: UserInfo | None
    error: str | None = None


class TokenReviewAuthenticator:
    def __init__(self, client: KubeClient, *, ttl: float = 10.0, timeout: float = 10.0,
                 backoff: Backoff = DEFAULT_WEBHOOK_BACKOFF, clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.ttl = ttl
        self.timeout = timeout
        self.backoff = backoff
        self.cache: TTLCache[TokenResult] = TTLCache(clock=clock)
        self._hmac_key = os.urandom(32)
        self.reviews_sent = 0
        self.review_codes: dict[str, int] = {}

    def cache_key(self, token: str) -> str:
        return hmac.new(self._hmac_key, token.encode(), hashlib.sha256).hexdigest()

    async def authenticate(self, token: str) -> TokenResult:
        """``TokenResult(user)``, ``TokenResult(None, "invalid bearer token")`` for a token
        the apiserver does not accept, ``TokenResult(None, <why>)`` when the review failed."""
        try:
            return await self.cache.get_or_load(self.cache_key(token), lambda: self._review(token),
                                                lambda r: self.ttl if r.error is None or r.error == INVALID_TOKEN
                                                else 0.0)
        except ApiError as e:
            log.error("token review failed: %s", e)
            return TokenResult(None, f"token review failed: {e}")

    async def _review(self, token: str) -> TokenResult:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "metadata": {},
                "spec": {"token": token}}
        review = await post_review(self.client, TOKENREVIEWS, body, timeout=self.timeout,
                                   backoff=self.backoff, on_attempt=self._attempted)
        st = review.get("status") or {}
        if not st.get("authenticated"):
            if st.get("error"):
                return TokenResult(None, str(st["error"]))
            return TokenResult(None, INVALID_TOKEN)
        u = st.get("user") or {}
        if not u.get("username"):
            return TokenResult(None, INVALID_TOKEN)
        extra = tuple((str(k), tuple(str(x) for x in (v or []))) for k, v in (u.get("extra") or {}).items())
        return TokenResult(UserInfo(str(u["username"]), str(u.get("uid") or ""),
                                    tuple(str(g) for g in u.get("groups") or []), extra))

    def _attempted(self, code: str) -> None:
        self.reviews_sent += 1
        self._count(code)

    def _count(self, code: str) -> None:
        self.review_codes[code] = self.review_codes.get(code, 0) + 1
