"""The server: assembles groups, storage, registries, the filter chain and the router into an
aiohttp application, and runs it over TLS with kube's lifecycle (ready after post-start
hooks, graceful shutdown on SIGTERM)."""
from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import ssl
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from .. import __version__
from ..api import APIGroup, AdmissionAttributes, ServedVersion
from ..auth.user import UserInfo, anonymous
from ..filters.requestinfo import RequestInfo, parse_request_info
from ..machinery import errors as E
from ..machinery import negotiation as N
from ..registry.store import Registry
from ..storage.interface import Backend
from . import discovery
from .handlers import HandlerConfig, ResourceHandler, respond

log = logging.getLogger("extserver")

AGG_V2 = "apidiscovery.k8s.io/v2"
AGG_V2BETA1 = "apidiscovery.k8s.io/v2beta1"

Authenticate = Callable[[web.Request], Awaitable[UserInfo | None]]
Authorize = Callable[[UserInfo, RequestInfo], Awaitable[tuple[bool, str]]]


def status_response(err: E.StatusError, request: web.Request | None = None) -> web.Response:
    resp = web.Response(body=orjson.dumps(err.status()), status=err.code, content_type=N.JSON)
    for k, v in err.headers.items():
        resp.headers[k] = v
    return resp


def forbidden_message(user: UserInfo, info: RequestInfo) -> E.StatusError:
    """kube-apiserver's 403 text for a denied request."""
    if info.is_resource_request:
        res = info.resource + (f"/{info.subresource}" if info.subresource else "")
        msg = f'User "{user.name}" cannot {info.verb} resource "{res}" in API group "{info.api_group}"'
        msg += f' in the namespace "{info.namespace}"' if info.namespace else " at the cluster scope"
        q = f"{info.resource}.{info.api_group}" if info.api_group else info.resource
        full = f'{q} "{info.name}" is forbidden: {msg}' if info.name else f"{q} is forbidden: {msg}"
        return E.StatusError(full, code=403, reason="Forbidden", name=info.name, group=info.api_group,
                             kind=info.resource)
    return E.StatusError(f'forbidden: User "{user.name}" cannot {info.verb} path "{info.path}"',
                         code=403, reason="Forbidden")


@dataclass
class Metrics:
    """Minimal request metrics; the operations module renders them."""

    requests: dict[tuple[str, str, str, str, str, str], int] = field(default_factory=dict)
    inflight: int = 0
    watchers: int = 0

    def observe(self, verb: str, info: RequestInfo, code: int) -> None:
        k = (verb.upper() if not info.is_resource_request else verb.upper(), info.api_group, info.api_version,
             info.resource, info.subresource, str(code))
        self.requests[k] = self.requests.get(k, 0) + 1


class ExtServer:
    def __init__(self, groups: list[APIGroup], backend: Backend, *, handler_config: HandlerConfig | None = None,
                 authenticate: Authenticate | None = None, authorize: Authorize | None = None,
                 anonymous_auth: bool = False, always_allow_paths: tuple[str, ...] = ("/healthz", "/readyz", "/livez")):
        for g in groups:
            g.validate()
        self.groups = groups
        self.backend = backend
        self.config = handler_config or HandlerConfig()
        self.authenticate = authenticate
        self.authorize = authorize
        self.anonymous_auth = anonymous_auth
        self.always_allow_paths = always_allow_paths
        self.registries: dict[tuple[str, str], Registry] = {}
        self.handlers: dict[tuple[str, str, str], ResourceHandler] = {}
        self.groups_by_name = {g.name: g for g in groups}
        self.shutdown_event = asyncio.Event()
        self.ready = False
        self.metrics = Metrics()
        self.post_start_hooks: list[Callable[["ExtServer"], Awaitable[None]]] = []
        for g in groups:
            for res in g.resources.values():
                reg = Registry(res, backend, admission=self._admission_for(g), server=self)
                self.registries[(g.name, res.plural)] = reg
                for v, sv in res.versions.items():
                    self.handlers[(g.name, v, res.plural)] = ResourceHandler(reg, sv, self.config)
        self._static: dict[str, bytes] = {}
        self._build_discovery()
        from ..openapi import build_openapi_documents
        self.openapi_docs = build_openapi_documents(self.served_versions(), title="extserver", version=__version__)

    # --- wiring -------------------------------------------------------------------------
    def registry(self, group: str, plural: str) -> Registry:
        return self.registries[(group, plural)]

    def served_versions(self) -> list[ServedVersion]:
        return [sv for g in self.groups for r in g.resources.values() for sv in r.versions.values()]

    def _admission_for(self, g: APIGroup):
        """Every group's in-process plugins see every request (as kube's admission chain):
        all mutating ``admit`` calls, then all ``validate`` calls."""
        chain = [p for grp in self.groups for p in grp.admission_plugins]

        async def admit(attrs: AdmissionAttributes) -> None:
            for p in chain:
                if p.handles(attrs):
                    await p.admit(attrs)
            for p in chain:
                if p.handles(attrs):
                    await p.validate(attrs)
        return admit

    def _build_discovery(self) -> None:
        s = self._static
        s["/apis"] = orjson.dumps(discovery.group_list_doc(self.groups))
        for g in self.groups:
            s[f"/apis/{g.name}"] = orjson.dumps(discovery.group_doc(g))
            for v in g.served_versions():
                s[f"/apis/{g.name}/{v}"] = orjson.dumps(discovery.resource_list_doc(g, v))
        for av in (AGG_V2, AGG_V2BETA1):
            s["agg:" + av] = orjson.dumps(discovery.aggregated_doc(self.groups, av))
        s["/version"] = orjson.dumps({"major": "1", "minor": "33", "gitVersion": f"v1.33.0-extserver.{__version__}",
                                      "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
                                      "goVersion": "", "compiler": "cpython", "platform": "linux/amd64",
                                      "emulationMajor": "", "emulationMinor": ""})

    # --- the request chain --------------------------------------------------------------
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        info = None
        verb = request.method
        try:
            info = parse_request_info(request.method, request.raw_path, request.query)
            verb = info.verb
            user = await self._authenticate(request)
            if info.path not in self.always_allow_paths and not any(
                    info.path.startswith(p + "/") for p in self.always_allow_paths):
                await self._authorize(user, info)
            resp = await self.route(request, info, user)
        except E.StatusError as e:
            resp = status_response(e, request)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as e:  # panic recovery: a 500 Status, the server keeps serving
            audit_id = request.headers.get("Audit-ID") or str(uuid.uuid4())
            log.error("internal error serving %s %s (audit-id %s): %s\n%s", request.method, request.path,
                      audit_id, e, traceback.format_exc())
            resp = status_response(E.InternalError("an unexpected error occurred"), request)
        if info is not None:
            self.metrics.observe(verb, info, resp.status)
        return resp

    async def _authenticate(self, request: web.Request) -> UserInfo:
        user = await self.authenticate(request) if self.authenticate is not None else None
        if user is not None:
            return user.with_authenticated_group()
        if self.anonymous_auth:
            return anonymous()
        raise E.Unauthorized()

    async def _authorize(self, user: UserInfo, info: RequestInfo) -> None:
        if self.authorize is None:
            return
        allowed, _reason = await self.authorize(user, info)
        if not allowed:
            raise forbidden_message(user, info)

    # --- routing ------------------------------------------------------------------------
    async def route(self, request: web.Request, info: RequestInfo, user: UserInfo) -> web.StreamResponse:
        if info.is_resource_request:
            h = self.handlers.get((info.api_group, info.api_version, info.resource))
            if h is None:
                raise E.PathNotFound()
            return await h.handle(request, info, user)
        path = info.path.rstrip("/") or "/"
        if request.method not in ("GET", "HEAD"):
            if path.startswith("/apis") or path in self._static:
                raise E.MethodNotSupported("", path, request.method)
            raise E.PathNotFound()
        if path == "/apis":
            accept = request.headers.get("Accept", "")
            for av, key in ((AGG_V2, "agg:" + AGG_V2), (AGG_V2BETA1, "agg:" + AGG_V2BETA1)):
                g, v = av.split("/")
                if f"g={g}" in accept and f"v={v}" in accept and "as=APIGroupDiscoveryList" in accept:
                    return self._etag_response(request, self._static[key],
                                               f"application/json;g={g};v={v};as=APIGroupDiscoveryList")
        body = self._static.get(path)
        if body is not None:
            return web.Response(body=body, content_type=N.JSON)
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            return await self.health(request, path)
        if path == "/openapi/v2" or path.startswith("/openapi/v3"):
            return self.openapi(request, path)
        if path == "/metrics":
            return web.Response(text=self.render_metrics(), content_type="text/plain")
        if path == "/":
            paths = sorted(k for k in self._static if k.startswith("/")) + [
                "/healthz", "/livez", "/readyz", "/metrics", "/openapi/v2", "/openapi/v3"]
            return web.Response(body=orjson.dumps({"paths": paths}), content_type=N.JSON)
        raise E.PathNotFound()

    @staticmethod
    def _etag_response(request: web.Request, body: bytes, ctype: str) -> web.Response:
        etag = '"' + hashlib.sha512(body).hexdigest()[:32].upper() + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        resp = web.Response(body=body, headers={"ETag": etag, "Vary": "Accept"})
        resp.headers["Content-Type"] = ctype
        return resp

    # --- openapi ------------------------------------------------------------------------
    def openapi(self, request: web.Request, path: str) -> web.Response:
        docs = self.openapi_docs
        if path == "/openapi/v2":
            return self._etag_response(request, docs.v2, N.JSON)
        if path == "/openapi/v3":
            return self._etag_response(request, docs.v3_discovery, N.JSON)
        status, body, headers = docs.v3_response(path[len("/openapi/v3/"):], request.query.get("hash"))
        if status == 404:
            raise E.PathNotFound()
        etag = headers.get("ETag")
        if status == 200 and etag and request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(status=status, body=body or None, headers=headers)

    # --- health and metrics -------------------------------------------------------------
    async def checks(self, kind: str) -> list[tuple[str, bool, str]]:
        out = [("ping", True, "")]
        if kind == "readyz" or kind == "healthz":
            ok, why = await self.backend.healthy()
            out.append((self.backend.name if self.backend.name != "embedded" else "storage", ok, why))
        if kind == "readyz":
            out.append(("poststarthook/ready", self.ready, "" if self.ready else "not started"))
            out.append(("shutdown", not self.shutdown_event.is_set(),
                        "" if not self.shutdown_event.is_set() else "process is shutting down"))
        return out

    async def health(self, request: web.Request, path: str) -> web.Response:
        kind, _, sub = path.lstrip("/").partition("/")
        checks = await self.checks(kind)
        if sub:
            for name, ok, why in checks:
                if name == sub:
                    return web.Response(text="ok" if ok else f"internal server error: {why}",
                                        status=200 if ok else 500, content_type="text/plain")
            raise E.PathNotFound()
        failed = [c for c in checks if not c[1]]
        if "verbose" in request.query or failed:
            lines = [f"[+]{n} ok" if ok else f"[-]{n} failed: reason withheld" for n, ok, _ in checks]
            lines.append(f"{kind} check failed" if failed else f"{kind} check passed")
            return web.Response(text="\n".join(lines) + "\n", status=500 if failed else 200,
                                content_type="text/plain")
        return web.Response(text="ok", content_type="text/plain")

    def render_metrics(self) -> str:
        lines = ["# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, "
                 "group, version, resource, subresource and HTTP response code.",
                 "# TYPE apiserver_request_total counter"]
        for (verb, g, v, r, sub, code), n in sorted(self.metrics.requests.items()):
            lines.append(f'apiserver_request_total{{code="{code}",component="apiserver",group="{g}",'
                         f'resource="{r}",subresource="{sub}",verb="{verb}",version="{v}"}} {n}')
        lines.append("# TYPE apiserver_current_inflight_requests gauge")
        lines.append(f'apiserver_current_inflight_requests{{request_kind="readOnly"}} {self.metrics.inflight}')
        lines.append("# TYPE apiserver_registered_watchers gauge")
        lines.append(f"apiserver_registered_watchers {self.metrics.watchers}")
        return "\n".join(lines) + "\n"

    # --- lifecycle ----------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body_bytes + 1, handler_args={"max_field_size": 65536})
        app["server"] = self
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    async def start(self) -> None:
        await self.backend.start()
        for g in self.groups:
            for p in g.admission_plugins:
                await p.start(self)
        for hook in self.post_start_hooks:
            await hook(self)
        self.ready = True

    async def stop(self) -> None:
        self.shutdown_event.set()
        await self.backend.close()


async def serve(server: ExtServer, *, host: str, port: int, ssl_context: ssl.SSLContext,
                shutdown_delay: float = 0.0, on_listening: Callable[[int], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``): ``/readyz`` fails first, then after
    ``shutdown_delay`` the listener closes, requests in flight finish and watches end."""
    await server.start()
    app = server.make_app()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=60.0, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=1024, reuse_address=True)
    await site.start()
    bound = port
    for s in (site._server.sockets if site._server else []):  # type: ignore[union-attr]
        bound = s.getsockname()[1]
        break
    if on_listening:
        on_listening(bound)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await stop.wait()
    log.info("shutting down: readyz fails now, draining in %.1fs", shutdown_delay)
    server.shutdown_event.set()
    if shutdown_delay > 0:
        await asyncio.sleep(shutdown_delay)
    await runner.cleanup()
    await server.backend.close()
