"""The request chain's common types: one :class:`RequestContext` per request, handed from
filter to filter. A filter is a closure built once, ``with_x(next, ...) -> Handler`` (as Go's
``WithX(handler, ...) http.Handler``), so a request costs a few calls, no lookups.

Filters answer their own refusals (401, 403, 429, 504) with :func:`status_response` so
that the filters outside them (audit, metrics) see a response, as kube's filters write
theirs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from ..auth.user import UserInfo
from ..machinery import errors as E
from ..machinery import negotiation as N
from .requestinfo import RequestInfo

#: the response header (and request header, echoed when present) carrying the audit ID
AUDIT_ID_HEADER = "Audit-Id"
#: where a Status error response keeps its error, for the audit log (typed keys: aiohttp >= 3.11)
STATUS_ERROR_KEY: Any = web.ResponseKey("extserver_status_error", E.StatusError) \
    if hasattr(web, "ResponseKey") else "extserver_status_error"
#: where the request keeps its context (for the response-prepare hook)
CONTEXT_KEY: Any = web.RequestKey("extserver_ctx", object) if hasattr(web, "RequestKey") else "extserver_ctx"


@dataclass(slots=True, eq=False)
class RequestContext:
    """What the filters learn about a request, built once and handed down.

    ``request`` may be replaced by a filter (authentication hands down a copy without the
    credential headers); everything after a filter uses ``ctx.request``."""

    request: web.Request
    audit_id: str
    received: float  # wall clock (time.time()) when the request arrived
    started: float  # monotonic clock, for durations
    info: RequestInfo = field(default=None)  # type: ignore[assignment]  # set by the request-info filter
    user: UserInfo | None = None
    long_running: bool = False
    #: the response's headers went out (set by the server's response-prepare hook)
    response_started: bool = False
    #: the audit event being recorded (set by the audit filter when the policy logs the request)
    audit: Any = None


Handler = Callable[[RequestContext], Awaitable[web.StreamResponse]]


def status_response(err: E.StatusError) -> web.Response:
    """The ``Status`` body for ``err`` with its code and headers (``Retry-After`` ...)."""
    resp = web.Response(body=orjson.dumps(err.status()), status=err.code, content_type=N.JSON)
    for k, v in err.headers.items():
        resp.headers[k] = v
    resp[STATUS_ERROR_KEY] = err
    return resp
