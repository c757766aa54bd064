"""The handler of a dynamic group (:class:`~extserver.providers.dynamic.DynamicGroup`: the
custom and external metrics APIs): GET only, JSON or YAML, the provider's code under the
``--provider-timeout`` deadline.

As with custom-metrics-apiserver's go-restful routes, only GET exists: any other method is
go-restful's 405. A protobuf-first ``Accept`` (kube-controller-manager's
``application/vnd.kubernetes.protobuf, */*``) gets JSON. What the provider raises is
mapped as for provider kinds: a ``StatusError`` passes, ``SourceUnavailable`` or any other
exception is 503 with ``Retry-After`` (one log line, no traceback to the client), the
deadline is 504."""
from __future__ import annotations

import logging
from typing import Awaitable, TypeVar

from aiohttp import web

from ..filters.requestinfo import RequestInfo
from ..machinery import errors as E
from ..machinery import negotiation as N
from ..providers.dynamic import DynamicGroup, DynamicRequest
from ..providers.provider import guarded_call
from . import discovery
from .handlers import HandlerConfig, _bool, _q, respond

log = logging.getLogger("extserver.providers")

T = TypeVar("T")


class DynamicGroupHandler:
    def __init__(self, group: DynamicGroup, config: HandlerConfig):
        self.group = group
        self.timeout = config.provider_timeout

    async def guarded(self, what: str, aw: Awaitable[T]) -> T:
        """Await the group's answer under the deadline; map the provider's failures."""
        return await guarded_call(self.group.name, what, aw, self.timeout)

    async def handle(self, request: web.Request, info: RequestInfo) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            raise E.MethodNotAllowed()
        out = N.negotiate(request.headers.get("Accept"), pretty=_bool(_q(request, "pretty", "false")),
                          allowed_conv=())
        req = DynamicRequest(info.api_version, info.verb, info.namespace, info.resource, info.name,
                             info.subresource, info.parts, request.query)
        return respond(await self.guarded(info.verb, self.group.get(req)), out)

    async def discovery(self, request: web.Request, version: str) -> web.Response:
        """``/apis/<group>/<version>``: the ``APIResourceList`` of the metrics listed now."""
        async def resources() -> list[dict]:
            return self.group.api_resources(version)
        doc = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{self.group.name}/{version}",
               "resources": await self.guarded("discovery", resources())}
        return respond(doc, N.negotiate(request.headers.get("Accept"), allowed_conv=()))

    def aggregated(self) -> dict:
        """The group's entry in aggregated discovery (``Stale`` versions while its provider
        cannot list its metrics)."""
        g = self.group
        try:
            return discovery.aggregated_from_api_resources(g.name, [(v, g.api_resources(v)) for v in g.versions])
        except Exception as e:
            log.warning("provider of %s: discovery failed: %s: %s", g.name, type(e).__name__, e)
            return {"metadata": {"name": g.name, "creationTimestamp": None},
                    "versions": [{"version": v, "resources": [], "freshness": "Stale"} for v in g.versions]}
