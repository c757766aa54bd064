"""Panic recovery: an unexpected exception below becomes a 500 ``Status`` (reason
``InternalError``), logged with the request's audit ID; the server keeps serving."""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..machinery import errors as E
from .chain import Handler, RequestContext, status_response
from .httplog import kv

log = logging.getLogger("extserver.panic")

#: kube's text for a request whose handler panicked
PANIC_MESSAGE = "This request caused apiserver to panic. Look in the logs for details."


def with_panic_recovery(handler: Handler) -> Handler:
    async def panic_recovery(ctx: RequestContext) -> web.StreamResponse:
        try:
            return await handler(ctx)
        except (asyncio.CancelledError, ConnectionResetError, web.HTTPException):
            raise  # the client went away / aiohttp's own answers
        except E.StatusError as e:  # a refusal no inner layer rendered
            return status_response(e)
        except Exception as e:
            r = ctx.request
            log.error("apiserver panic'd on %s %s: %s: %s", r.method, r.raw_path, type(e).__name__, e,
                      exc_info=True, extra=kv(auditID=ctx.audit_id))
            return status_response(E.StatusError(PANIC_MESSAGE, code=500, reason="InternalError"))

    return panic_recovery
