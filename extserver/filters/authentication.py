"""Authentication: who is asking. ``authenticate(request)`` returns the user, None when the
request carries no credential (anonymous, when allowed) or raises a ``StatusError`` (401 for
a rejected credential). Authenticated users always carry ``system:authenticated``.

After authentication the credential headers are dropped (``strip_credentials`` returns the
request the rest of the chain sees)."""
from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web

from ..auth.user import UserInfo, anonymous
from ..machinery import errors as E
from .chain import Handler, RequestContext, status_response

Authenticate = Callable[[web.Request], Awaitable[UserInfo | None]]
StripCredentials = Callable[[web.Request], web.Request]
#: called with the 401 response of a failed authentication (the audit log records it)
OnFailure = Callable[[RequestContext, web.StreamResponse], None]


def with_authentication(handler: Handler, authenticate: Authenticate | None, *, anonymous_auth: bool,
                        strip_credentials: StripCredentials | None = None,
                        on_failure: OnFailure | None = None) -> Handler:
    async def authentication(ctx: RequestContext) -> web.StreamResponse:
        try:
            user = await authenticate(ctx.request) if authenticate is not None else None
            if user is None and not anonymous_auth:
                raise E.Unauthorized()
        except E.StatusError as e:
            resp = status_response(e)
            if on_failure is not None:
                on_failure(ctx, resp)
            return resp
        ctx.user = user.with_authenticated_group() if user is not None else anonymous()
        if strip_credentials is not None:
            ctx.request = strip_credentials(ctx.request)
        return await handler(ctx)

    return authentication
