"""The handler of a provider kind (objects computed on request, read-only): get, list and,
when the provider offers it, watch -- the read half of :class:`~.handlers.ResourceHandler`
on hub objects instead of stored records.

Every other verb is a route k8s.io/apiserver would not install for such a storage: 405
``MethodNotAllowed`` with go-restful's message. ``?watch`` on a provider without watch is
``ListResource``'s ``NewMethodNotSupported(..., "watch")``. Computed objects carry no
``resourceVersion`` and lists have empty ``metadata`` (as metrics-server's)."""
from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
from aiohttp import web

from ..api import ServedVersion
from ..filters.requestinfo import RequestInfo
from ..machinery import errors as E
from ..machinery import negotiation as N
from ..machinery.meta import KubeObject
from ..providers.provider import ProviderRegistry
from ..registry.codec import Codec
from .handlers import HandlerConfig, ResourceHandler, _bool, _q, respond, table_doc


class ProviderHandler(ResourceHandler):
    registry: ProviderRegistry  # type: ignore[assignment]

    def __init__(self, registry: ProviderRegistry, sv: ServedVersion, config: HandlerConfig):
        # not ResourceHandler.__init__: there is no codec or storage behind a provider
        self.registry = registry  # type: ignore[assignment]
        self.sv = sv
        self.config = config
        self.res = registry.resource
        self.strategy = registry.strategy

    async def handle(self, request: web.Request, info: RequestInfo, user) -> web.StreamResponse:
        self._check_path(info)
        verb = info.verb
        pretty = _bool(_q(request, "pretty", "false"))
        if verb == "get":
            return await self.get(request, info, pretty)
        if verb == "list":
            return await self.list(request, info, pretty)
        if verb == "watch":
            if "watch" not in self.res.verbs:
                raise E.MethodNotSupported(self.registry.group, self.res.plural, "watch")
            return await self.watch(request, info)
        raise E.MethodNotAllowed()

    # --- encoding -----------------------------------------------------------------------
    def _doc(self, hub: KubeObject) -> dict:
        if self.sv.model is self.res.hub:  # served as computed: no conversion, no copy
            d = hub.to_wire()
            d["apiVersion"], d["kind"] = self.sv.api_version, self.sv.kind
            return d
        return Codec.hub_to_dict(hub, self.sv)

    def _pom_doc(self, hub: KubeObject, conv_version: str) -> dict:
        return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{conv_version}",
                "metadata": hub.metadata.to_wire()}

    def _table_of(self, hubs: list[KubeObject], out: N.Output, request: web.Request, headers: bool = True) -> dict:
        entries = [(h, lambda h=h: self._doc(h), lambda h=h: self._pom_doc(h, out.conv_version)) for h in hubs]
        return table_doc(self.strategy.table_columns(), entries, {}, out.conv_version,
                         _q(request, "includeObject", "Metadata"), headers)

    # --- reads --------------------------------------------------------------------------
    async def get(self, request: web.Request, info: RequestInfo, pretty: bool) -> web.Response:
        out = N.negotiate(request.headers.get("Accept"), pretty=pretty,
                          allowed_conv=("Table", "PartialObjectMetadata"))
        hub = await self.registry.get(info.namespace, info.name)
        if out.conv == "Table":
            return respond(self._table_of([hub], out, request), out)
        if out.conv == "PartialObjectMetadata":
            return respond(self._pom_doc(hub, out.conv_version), out)
        return respond(self._doc(hub), out)

    async def list(self, request: web.Request, info: RequestInfo, pretty: bool) -> web.Response:
        out = N.negotiate(request.headers.get("Accept"), pretty=pretty,
                          allowed_conv=("Table", "PartialObjectMetadataList"))
        opts = self._list_options(request, info)
        hubs = await self.registry.list(info.namespace, opts.label_selector, opts.field_selector)
        if out.conv == "Table":
            return respond(self._table_of(hubs, out, request), out)
        if out.conv == "PartialObjectMetadataList":
            return respond({"kind": "PartialObjectMetadataList", "apiVersion": f"meta.k8s.io/{out.conv_version}",
                            "metadata": {}, "items": [self._pom_doc(h, out.conv_version) for h in hubs]}, out)
        return respond({"kind": self.sv.list_kind, "apiVersion": self.sv.api_version, "metadata": {},
                        "items": [self._doc(h) for h in hubs]}, out)

    async def watch(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        """The provider's events as a kube watch stream, until ``timeoutSeconds`` (default a
        random time in [min-request-timeout, 2x)), the client leaving or server shutdown."""
        out = N.negotiate(request.headers.get("Accept"), allowed_conv=("Table", "PartialObjectMetadata"))
        opts = self._list_options(request, info)
        ts = _q(request, "timeoutSeconds")
        try:
            timeout = float(int(ts)) if ts else self.config.min_request_timeout * (1 + random.random())
        except ValueError:
            raise E.BadRequest(f'invalid timeoutSeconds: "{ts}"') from None
        events = self.registry.watch(info.namespace, opts.label_selector, opts.field_selector)
        resp = web.StreamResponse(status=200)
        resp.content_type = N.JSON
        resp.headers["Cache-Control"] = "no-cache, private"
        await resp.prepare(request)
        server = request.app.get("server")

        async def pump() -> None:
            async for typ, hub in events:
                if out.conv == "Table":
                    obj: Any = self._table_of([hub], out, request, headers=False)
                elif out.conv == "PartialObjectMetadata":
                    obj = self._pom_doc(hub, out.conv_version)
                else:
                    obj = self._doc(hub)
                await resp.write(orjson.dumps({"type": typ, "object": obj}) + b"\n")

        pump_task = asyncio.ensure_future(pump())
        waiters = {pump_task}
        closing = asyncio.ensure_future(server.shutdown_event.wait()) if server is not None else None
        if closing is not None:
            waiters.add(closing)
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if pump_task.done() and not pump_task.cancelled():
                exc = pump_task.exception()
                if isinstance(exc, E.StatusError):
                    await resp.write(orjson.dumps({"type": "ERROR", "object": exc.status()}) + b"\n")
                elif exc is not None and not isinstance(exc, ConnectionResetError):
                    raise exc
        finally:
            for t in waiters:
                if not t.done():
                    t.cancel()
            try:
                await pump_task
            except (asyncio.CancelledError, Exception):
                pass
            await events.aclose()
        try:
            await resp.write_eof()
        except ConnectionResetError:
            pass
        return resp
