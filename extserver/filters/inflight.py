"""In-flight limits (kube's ``WithMaxInFlightLimit``): at most ``--max-requests-inflight``
read-only (get, list) and ``--max-mutating-requests-inflight`` mutating requests at once;
beyond that a 429 ``Status`` with ``Retry-After: 1``. Long-running requests (watches) and
the health probes are not counted; ``system:masters`` is never refused (kube's rule: a
super-admin always gets an answer). A limit of 0 means no limit."""
from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ..machinery import errors as E
from .chain import Handler, RequestContext, status_response

READ_ONLY_VERBS = frozenset({"get", "list", "watch", "head"})
PRIVILEGED_GROUP = "system:masters"
#: probes are answered whatever the load
EXEMPT_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
EXEMPT_PREFIXES = ("/healthz/", "/livez/", "/readyz/")


@dataclass(slots=True)
class InflightCounters:
    """Requests being served now, and those refused since start (for ``/metrics``)."""

    read_only: int = 0
    mutating: int = 0
    dropped_read_only: int = 0
    dropped_mutating: int = 0


def _exempt(path: str) -> bool:
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


def with_max_inflight(handler: Handler, counters: InflightCounters, *, max_read_only: int,
                      max_mutating: int) -> Handler:
    async def max_inflight(ctx: RequestContext) -> web.StreamResponse:
        info = ctx.info
        if ctx.long_running or (not info.is_resource_request and _exempt(info.path)):
            return await handler(ctx)
        if info.verb in READ_ONLY_VERBS:
            if max_read_only and counters.read_only >= max_read_only:
                if not _privileged(ctx):
                    counters.dropped_read_only += 1
                    return status_response(E.TooManyRequests())
                return await handler(ctx)
            counters.read_only += 1
            try:
                return await handler(ctx)
            finally:
                counters.read_only -= 1
        if max_mutating and counters.mutating >= max_mutating:
            if not _privileged(ctx):
                counters.dropped_mutating += 1
                return status_response(E.TooManyRequests())
            return await handler(ctx)
        counters.mutating += 1
        try:
            return await handler(ctx)
        finally:
            counters.mutating -= 1

    return max_inflight


def _privileged(ctx: RequestContext) -> bool:
    return ctx.user is not None and PRIVILEGED_GROUP in ctx.user.groups
