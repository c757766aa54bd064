"""Request timeout (kube's ``WithRequestDeadline`` + ``WithTimeoutForNonLongRunningRequests``):
a request that is not long-running gets ``--request-timeout`` (or its shorter ``?timeout=``)
from its arrival; past it the client gets a 504 ``Timeout`` ``Status`` at once. As in kube
the handler is not interrupted (a storage write in progress completes), only its body reads
fail; its late answer is dropped. No task per request: a timer, cancelled on time.
Watches are not cut here: they end at a random point between ``--min-request-timeout``
and twice it (the watch handler). A handler that streams its body (big lists) asks
:func:`deadline_passed` between slices and stops; once its headers are out, the deadline
aborts the connection (kube: ``http.ErrAbortHandler``), so the client sees a cut body."""
from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from aiohttp import web

from ..machinery import errors as E
from .chain import Handler, RequestContext, status_response
from .httplog import V, kv

log = logging.getLogger("extserver.timeout")

TIMEOUT_MESSAGE = "request did not complete within the allotted timeout"
INVALID_TIMEOUT = "invalid timeout specified in the request URL"

#: where the request keeps its deadline (for handlers that stream)
DEADLINE_KEY: Any = web.RequestKey("extserver_deadline", object) if hasattr(web, "RequestKey") \
    else "extserver_deadline"

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)([^\d.]*)")


def parse_go_duration(s: str) -> float:
    """Seconds in a Go duration (``300ms``, ``1m30s``, ``-1.5h``, ``0``); ``ValueError``
    with Go's message otherwise."""
    orig, sign = s, 1.0
    if s[:1] in ("-", "+"):
        sign, s = (-1.0 if s[0] == "-" else 1.0), s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'time: invalid duration "{orig}"')
    total, pos = 0.0, 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise ValueError(f'time: invalid duration "{orig}"')
        number, unit = m.groups()
        if not unit:
            raise ValueError(f'time: missing unit in duration "{orig}"')
        if unit not in _UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{orig}"')
        total += float(number) * _UNITS[unit]
        pos = m.end()
    return sign * total


class _Deadline:
    """Fires at the request's deadline: answers 504 at once (``Connection: close``) while the
    handler keeps running, and fails the handler's pending body reads (kube's
    ``timeoutReader``). If the handler's own response had already started, the connection
    is closed instead (kube aborts it)."""

    __slots__ = ("ctx", "sent", "sending", "fired")

    def __init__(self, ctx: RequestContext):
        self.ctx = ctx
        self.sent: web.Response | None = None
        self.sending: asyncio.Task | None = None
        self.fired = False

    def fire(self) -> None:
        self.fired = True
        r = self.ctx.request
        r.content.set_exception(asyncio.TimeoutError(TIMEOUT_MESSAGE))
        if self.ctx.response_started:
            if r.transport is not None:
                r.transport.abort()
            return
        self.sent = resp = status_response(E.Timeout(f"Timeout: {TIMEOUT_MESSAGE}"))
        resp.force_close()
        self.sending = asyncio.get_running_loop().create_task(self._send(resp))

    async def _send(self, resp: web.Response) -> None:
        try:
            await resp.prepare(self.ctx.request)
            await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client is gone


def deadline_passed(request: web.Request) -> bool:
    """The request's deadline fired (its 504 is answered or its connection aborted)."""
    d = request.get(DEADLINE_KEY)
    return d is not None and d.fired


def with_timeout(handler: Handler, request_timeout: float) -> Handler:
    async def timeout(ctx: RequestContext) -> web.StreamResponse:
        if ctx.long_running:
            return await handler(ctx)
        limit = request_timeout
        raw = ctx.request.query.get("timeout") if ctx.request.query_string else None
        if raw:
            try:
                asked = parse_go_duration(raw)
            except ValueError as e:
                return status_response(E.BadRequest(f"{INVALID_TIMEOUT} - {e}"))
            if 0 < asked < limit:
                limit = asked
        if limit <= 0:
            return await handler(ctx)
        deadline = _Deadline(ctx)
        ctx.request[DEADLINE_KEY] = deadline
        timer = asyncio.get_running_loop().call_later(max(0.0, ctx.started + limit - time.monotonic()),
                                                      deadline.fire)
        try:
            resp = await handler(ctx)
        except Exception as e:
            if deadline.sent is None:
                raise
            log.log(V(2), "post-timeout activity: the handler failed after its request timed out",
                    extra=kv(error=repr(e), auditID=ctx.audit_id))
        finally:
            timer.cancel()
        if deadline.sent is not None:  # the client already has its 504; the handler's answer is dropped
            if deadline.sending is not None:
                await deadline.sending
            return deadline.sent
        return resp

    return timeout
