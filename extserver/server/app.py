"""The server: assembles groups, storage, registries, the filter chain and the router into an
aiohttp application, and runs it over TLS with kube's lifecycle.

A request's path (one module per step)::

    dispatch (audit ID, metrics, access log)
      -> filters.panic -> filters.requestinfo -> filters.authentication -> filters.audit
      -> filters.impersonation -> filters.authorization -> filters.inflight -> filters.timeout
      -> route: discovery | openapi | health/metrics/version | ResourceHandler

Lifecycle (``serve``): storage and admission plugins start, the listener opens, post-start
hooks run (``/readyz`` fails until they are done); on SIGTERM ``/readyz`` fails first, after
``--shutdown-delay-duration`` the listener closes, watches end, requests in flight finish."""
from __future__ import annotations

import asyncio
import fcntl
import gc
import hashlib
import logging
import os
import platform
import signal
import ssl
import struct
import termios
import time
import uuid
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import orjson
from aiohttp import web

from .. import __version__
from ..api import AdmissionAttributes, AdmissionPlugin, APIGroup, ServedVersion
from ..filters.audit import Auditor, with_audit
from ..filters.authentication import Authenticate, StripCredentials, with_authentication
from ..filters.authorization import Authorize, forbidden_message, with_authorization
from ..filters.chain import AUDIT_ID_HEADER, CONTEXT_KEY, Handler, RequestContext, status_response
from ..filters.httplog import log_request
from ..filters.impersonation import with_impersonation
from ..filters.inflight import InflightCounters, with_max_inflight
from ..filters.panic import with_panic_recovery
from ..filters.requestinfo import RequestInfo, with_request_info
from ..filters.timeout import with_timeout
from ..machinery import errors as E
from ..machinery import negotiation as N
from ..registry.store import Registry
from ..storage.interface import Backend
from . import discovery
from .connections import NOT_IMPLEMENTED, ConnectionLimits, LimitedSite, default_max_connections, \
    unsupported_transfer_encoding
from .handlers import HandlerConfig, ResourceHandler
from .provider_handler import ProviderHandler
from .dynamic_handler import DynamicGroupHandler
from ..providers.dynamic import DynamicGroup
from ..providers.provider import Provider, ProviderRegistry
from .health import Health, adapt
from .metrics import MetricsRegistry, RequestMetrics, process_metrics
from .tls import DynamicTLS

__all__ = ["ExtServer", "ServingOptions", "serve", "status_response", "forbidden_message", "Authenticate",
           "Authorize"]

log = logging.getLogger("extserver")

AGG_V2 = "apidiscovery.k8s.io/v2"
AGG_V2BETA1 = "apidiscovery.k8s.io/v2beta1"

PostStartHook = Callable[["ExtServer"], Awaitable[None]]
ShutdownHook = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class ServingOptions:
    """The request chain's limits (``--request-timeout``, ``--max-requests-inflight``,
    ``--max-mutating-requests-inflight``; 0 = no limit) and the listener's
    (:class:`~.connections.ConnectionLimits`)."""

    request_timeout: float = 60.0
    max_requests_inflight: int = 400
    max_mutating_requests_inflight: int = 200
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)


def aggregated_discovery_version(accept: str) -> str | None:
    """The ``apidiscovery.k8s.io`` version the client prefers among those served (the first
    acceptable entry of ``Accept`` by quality then order), or None for the plain
    ``APIGroupList``."""
    if "apidiscovery.k8s.io" not in accept:
        return None
    for media, params, _q in N._parse_accept(accept):
        if media in (N.JSON, "application/*", "*/*") and params.get("g") == "apidiscovery.k8s.io" \
                and params.get("as") == "APIGroupDiscoveryList":
            av = f"apidiscovery.k8s.io/{params.get('v', '')}"
            if av in (AGG_V2, AGG_V2BETA1):
                return av
    return None


def _platform() -> str:
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return f"{platform.system().lower()}/{machine}"


class ExtServer:
    """An API server for ``groups`` on ``backend``: registries and handlers per resource,
    discovery and OpenAPI documents, the request chain (:meth:`build_chain`), health checks
    (``health``), metrics (``metrics``) and the lifecycle hooks; :func:`serve` runs it."""

    def __init__(self, groups: list[APIGroup], backend: Backend, *, handler_config: HandlerConfig | None = None,
                 authenticate: Authenticate | None = None, authorize: Authorize | None = None,
                 anonymous_auth: bool = False, always_allow_paths: tuple[str, ...] = ("/healthz", "/readyz", "/livez"),
                 strip_credentials: StripCredentials | None = None, serving: ServingOptions | None = None,
                 auditor: Auditor | None = None, metrics: MetricsRegistry | None = None,
                 admission_plugins: list[AdmissionPlugin] | None = None):
        for g in groups:
            g.validate()
        self.groups = groups
        #: every in-process admission plugin, in order: the server's own (``admission_plugins``,
        #: e.g. NamespaceLifecycle, first as in kube) then each group's
        self.admission_plugins: list[AdmissionPlugin] = list(admission_plugins or []) + [
            p for g in groups for p in g.admission_plugins]
        self.backend = backend
        self.config = handler_config or HandlerConfig()
        self.authenticate = authenticate
        self.authorize = authorize
        self.anonymous_auth = anonymous_auth
        self.always_allow_paths = always_allow_paths
        self.strip_credentials = strip_credentials
        self.serving = serving or ServingOptions()
        self.auditor = auditor
        self.registries: dict[tuple[str, str], Registry] = {}
        self.handlers: dict[tuple[str, str, str], ResourceHandler] = {}
        self.groups_by_name = {g.name: g for g in groups}
        #: set when watches must end (the listener is closed, the server is draining)
        self.shutdown_event = asyncio.Event()
        #: set on SIGTERM: /readyz fails from then on
        self.shutting_down = False
        self.ready = False
        #: ``async hook(server)`` run once the server listens; entries may also be ``(name, hook)``
        self.post_start_hooks: list[PostStartHook | tuple[str, PostStartHook]] = []
        #: ``async hook()`` run when the server has stopped serving (close clients, files ...)
        self.shutdown_hooks: list[ShutdownHook] = []
        #: the serving TLS once ``serve`` runs with one (``set_client_cas``)
        self.tls: DynamicTLS | None = None
        #: the listener's connection counts once ``serve`` runs
        self.connections = None
        #: ``--kubeconfig`` (the main apiserver, for providers' informers); None: in-cluster
        self.kubeconfig: str | None = None
        for g in groups:
            for res in g.resources.values():
                if res.provider is not None:  # computed on request: no storage behind it
                    if type(res.provider).start is not Provider.start:
                        self.add_post_start_hook(f"provider-{res.qualified}", res.provider.start)
                        self.shutdown_hooks.append(res.provider.stop)
                    preg = ProviderRegistry(res, timeout=self.config.provider_timeout)
                    for v, sv in res.versions.items():
                        self.handlers[(g.name, v, res.plural)] = ProviderHandler(preg, sv, self.config)
                    continue
                reg = Registry(res, backend, admission=self._admission_for(g), server=self)
                self.registries[(g.name, res.plural)] = reg
                for v, sv in res.versions.items():
                    self.handlers[(g.name, v, res.plural)] = ResourceHandler(reg, sv, self.config)
        #: the groups that answer their own requests (custom and external metrics), by name
        self.dynamic: dict[str, DynamicGroupHandler] = {}
        for g in groups:
            if isinstance(g, DynamicGroup):
                g.bind(self)
                self.dynamic[g.name] = DynamicGroupHandler(g, self.config)
        self._static: dict[str, bytes] = {}
        self._build_discovery()
        from ..openapi import build_openapi_documents
        self.openapi_docs = build_openapi_documents(self.served_versions(), title="extserver", version=__version__)
        self._hooks_done: dict[str, bool] = {}
        self.health = Health()
        self._install_health_checks()
        self.metrics = metrics or MetricsRegistry()
        self.inflight = InflightCounters()
        self.request_metrics = RequestMetrics(self.metrics)
        self.registered_watchers = self.metrics.gauge(
            "apiserver_registered_watchers", "Number of currently registered watchers for a given resources",
            ("group", "version", "kind"))
        self.metrics.add_collector(self._render_server_metrics)
        self.metrics.add_collector(process_metrics(time.time()))
        self._chain: Handler | None = None

    # --- wiring -------------------------------------------------------------------------
    def registry(self, group: str, plural: str) -> Registry:
        return self.registries[(group, plural)]

    def served_versions(self) -> list[ServedVersion]:
        return [sv for g in self.groups for r in g.resources.values() for sv in r.versions.values()]

    def add_post_start_hook(self, name: str, hook: PostStartHook) -> None:
        """Run ``hook(server)`` once listening; ``/readyz/poststarthook/<name>`` fails until it returns."""
        self.post_start_hooks.append((name, hook))

    def _admission_for(self, g: APIGroup):
        """Every in-process plugin sees every request (as kube's admission chain): all
        mutating ``admit`` calls, then all ``validate`` calls."""
        chain = self.admission_plugins

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
            for v in g.served_versions() if g.name not in self.dynamic else ():
                s[f"/apis/{g.name}/{v}"] = orjson.dumps(discovery.resource_list_doc(g, v))
        # a dynamic group's resources change with its provider: its parts are computed per request
        plain = [g for g in self.groups if g.name not in self.dynamic]
        self._aggregated_plain = {av: discovery.aggregated_doc(plain, av) for av in (AGG_V2, AGG_V2BETA1)}
        for av, doc in self._aggregated_plain.items():
            s["agg:" + av] = orjson.dumps(doc)
        s["/version"] = orjson.dumps({"major": "1", "minor": "33", "emulationMajor": "", "emulationMinor": "",
                                      "gitVersion": f"v1.33.0-extserver.{__version__}", "gitCommit": "",
                                      "gitTreeState": "clean", "buildDate": "", "goVersion": "",
                                      "compiler": "cpython", "platform": _platform()})

    # --- the request chain --------------------------------------------------------------
    def build_chain(self) -> Handler:
        """The filters in kube's order around the router (outermost last)."""
        s = self.serving
        h: Handler = self._route_ctx
        h = with_timeout(h, s.request_timeout)
        h = with_max_inflight(h, self.inflight, max_read_only=s.max_requests_inflight,
                              max_mutating=s.max_mutating_requests_inflight)
        h = with_authorization(h, self.authorize, always_allow_paths=self.always_allow_paths)
        h = with_impersonation(h, self.authorize)
        if self.auditor is not None:
            h = with_audit(h, self.auditor)
        h = with_authentication(h, self.authenticate, anonymous_auth=self.anonymous_auth,
                                strip_credentials=self.strip_credentials,
                                on_failure=self.auditor.failed_authentication if self.auditor else None)
        h = with_request_info(h)
        return with_panic_recovery(h)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp handler: one context per request through the chain; then the request
        metrics and the access log line."""
        if unsupported_transfer_encoding(request):
            resp = web.Response(status=501, text=NOT_IMPLEMENTED.decode(), charset="utf-8")
            resp.force_close()
            return resp
        started = time.monotonic()
        ctx = RequestContext(request, request.headers.get(AUDIT_ID_HEADER) or str(uuid.uuid4()), time.time(),
                             started)
        request[CONTEXT_KEY] = ctx
        chain = self._chain or self._set_chain()
        resp = await chain(ctx)
        elapsed = time.monotonic() - started
        info = ctx.info
        if info is not None:
            known = (info.api_group, info.api_version, info.resource) in self.handlers
            self.request_metrics.observe(ctx, known, resp.status, elapsed)
        log_request(ctx, resp.status, elapsed)
        return resp

    def _set_chain(self) -> Handler:
        self._chain = self.build_chain()
        return self._chain

    async def _on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """Just before the headers go out (also for watches, which stream): ``Audit-Id`` on
        every response; a long-running request's ``ResponseStarted`` audit stage."""
        ctx: RequestContext | None = request.get(CONTEXT_KEY)
        if ctx is None:
            return
        ctx.response_started = True
        response.headers[AUDIT_ID_HEADER] = ctx.audit_id
        if ctx.long_running and self.auditor is not None:
            self.auditor.response_started(ctx, response)

    # --- routing ------------------------------------------------------------------------
    async def _route_ctx(self, ctx: RequestContext) -> web.StreamResponse:
        try:
            return await self.route(ctx.request, ctx.info, ctx.user)
        except E.StatusError as e:
            return status_response(e)

    def _aggregated_discovery(self, av: str) -> bytes:
        if not self.dynamic:
            return self._static["agg:" + av]
        doc = dict(self._aggregated_plain[av])
        doc["items"] = doc["items"] + [h.aggregated() for h in self.dynamic.values()]
        return orjson.dumps(doc)

    async def route(self, request: web.Request, info: RequestInfo, user) -> web.StreamResponse:
        dyn = self.dynamic.get(info.api_group)
        if dyn is not None and info.api_version in dyn.group.versions:  # computed: metrics APIs
            if info.is_resource_request:
                return await dyn.handle(request, info)
            if request.method in ("GET", "HEAD") and info.path.strip("/").count("/") == 2:
                return await dyn.discovery(request, info.api_version)
        if info.is_resource_request:
            h = self.handlers.get((info.api_group, info.api_version, info.resource))
            if h is None:
                raise E.PathNotFound()
            if info.verb != "watch":
                return await h.handle(request, info, user)
            watchers = self.registered_watchers.child((info.api_group, info.api_version, h.sv.kind))
            watchers.inc()
            try:
                return await h.handle(request, info, user)
            finally:
                watchers.dec()
        path = info.path.rstrip("/") or "/"
        if request.method not in ("GET", "HEAD"):
            if path.startswith("/apis") or path in self._static:
                raise E.MethodNotAllowed()
            raise E.PathNotFound()
        if path == "/apis":
            av = aggregated_discovery_version(request.headers.get("Accept", ""))
            if av is not None:
                g, v = av.split("/")
                return self._etag_response(request, self._aggregated_discovery(av),
                                           f"application/json;g={g};v={v};as=APIGroupDiscoveryList")
        body = self._static.get(path)
        if body is not None:
            return web.Response(body=body, content_type=N.JSON)
        kind, _, sub = path.lstrip("/").partition("/")
        if kind in ("healthz", "livez", "readyz"):
            resp = await self.health.handle(request, kind, sub)
            if resp is None:
                raise E.PathNotFound()
            return resp
        if path == "/openapi/v2" or path.startswith("/openapi/v3"):
            return self.openapi(request, path)
        if path == "/metrics":
            return await self.metrics.scrape()
        if path == "/":
            paths = sorted([k for k in self._static if k.startswith("/")]
                           + [f"/apis/{g}/{v}" for g, h in self.dynamic.items() for v in h.group.versions]) + [
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
    def _install_health_checks(self) -> None:
        h = self.health

        async def ping() -> tuple[bool, str]:
            return True, ""

        async def informers() -> tuple[bool, str]:
            waiting = [p.name for p in self.admission_plugins if not p.ready()]
            return (False, f"{len(waiting)} informers not started yet: {waiting}") if waiting else (True, "")

        async def shutdown() -> tuple[bool, str]:
            return (False, "process is shutting down") if self.shutting_down else (True, "")

        h.add("ping", ping, livez=True)
        # the storage check is named as kube names it when the storage is etcd
        h.add("etcd" if self.backend.name == "etcd3" else "storage", self.backend.healthy)
        if self.admission_plugins:
            h.add("informer-sync", informers, healthz=False)
        auth_obj = getattr(self.authenticate, "__self__", self.authenticate)
        if callable(getattr(auth_obj, "healthy", None)):
            h.add("authentication", adapt(auth_obj.healthy), healthz=False)
        self._shutdown_check = shutdown

    def _hooks(self) -> list[tuple[str, PostStartHook]]:
        return [h if isinstance(h, tuple) else (getattr(h, "__name__", "hook"), h) for h in self.post_start_hooks]

    def _render_server_metrics(self) -> str:
        c = self.inflight
        lines = ["# HELP apiserver_current_inflight_requests Maximal number of currently used inflight request "
                 "limit of this apiserver per request kind in last second.",
                 "# TYPE apiserver_current_inflight_requests gauge",
                 f'apiserver_current_inflight_requests{{request_kind="mutating"}} {c.mutating}',
                 f'apiserver_current_inflight_requests{{request_kind="readOnly"}} {c.read_only}',
                 "# HELP apiserver_dropped_requests_total Number of requests dropped with 'Try again later' "
                 "response.",
                 "# TYPE apiserver_dropped_requests_total counter",
                 f'apiserver_dropped_requests_total{{request_kind="mutating"}} {c.dropped_mutating}',
                 f'apiserver_dropped_requests_total{{request_kind="readOnly"}} {c.dropped_read_only}']
        t = self.connections
        if t is not None:  # the listener's (server/connections.py); not kube metrics
            lines += ["# HELP extserver_open_connections Open connections, TLS handshakes in flight included.",
                      "# TYPE extserver_open_connections gauge", f"extserver_open_connections {t.open}",
                      "# HELP extserver_shed_connections_total Connections closed by the connection caps: idle "
                      "ones closed for a new one, stalled handshakes aborted, new ones refused.",
                      "# TYPE extserver_shed_connections_total counter",
                      f'extserver_shed_connections_total{{reason="idle"}} {t.shed_idle}',
                      f'extserver_shed_connections_total{{reason="handshake"}} {t.shed_handshakes}',
                      f'extserver_shed_connections_total{{reason="refused"}} {t.refused}']
        if self.auditor is not None:
            sink = self.auditor.sink
            lines += ["# HELP apiserver_audit_event_total Counter of audit events generated and sent to the audit "
                      "backend.", "# TYPE apiserver_audit_event_total counter",
                      f"apiserver_audit_event_total {sink.events}",
                      "# HELP apiserver_audit_error_total Counter of audit events that failed to be audited "
                      "properly.", "# TYPE apiserver_audit_error_total counter",
                      f'apiserver_audit_error_total{{plugin="log"}} {sink.dropped}']
        return "\n".join(lines) + "\n"

    # --- lifecycle ----------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body_bytes + 1, handler_args={"max_field_size": 65536})
        app["server"] = self
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.dispatch)  # every path, newlines included
        app.on_response_prepare.append(self._on_response_prepare)
        self._set_chain()
        return app

    async def prepare(self) -> None:
        """Before listening: storage and the admission plugins start; post-start hook checks
        are installed (failing until the hooks ran)."""
        await self.backend.start()
        for p in self.admission_plugins:
            await p.start(self)
        for name, _ in self._hooks():
            if name not in self._hooks_done:
                self._hooks_done[name] = False
                self.health.add(f"poststarthook/{name}", self._hook_check(name))
        if not any(c.name == "shutdown" for c in self.health.checks):
            self.health.add("shutdown", self._shutdown_check, healthz=False)  # last, as kube lists it

    def _hook_check(self, name: str) -> Callable[[], Awaitable[tuple[bool, str]]]:
        async def check() -> tuple[bool, str]:
            return (True, "") if self._hooks_done.get(name) else (False, "not finished")
        return check

    async def run_post_start_hooks(self) -> None:
        """Run the post-start hooks concurrently; ``ready`` once all returned. A hook that
        raises is fatal to the server (as in kube)."""

        async def run(name: str, hook: PostStartHook) -> None:
            await hook(self)
            self._hooks_done[name] = True
            log.info("post-start hook %s finished", name)

        await asyncio.gather(*(run(n, h) for n, h in self._hooks()))
        self.ready = True

    async def start(self) -> None:
        """Everything before serving, hooks included (for embedding without ``serve``)."""
        await self.prepare()
        await self.run_post_start_hooks()

    def begin_shutdown(self) -> None:
        """``/readyz`` fails from now on (load balancers stop sending new requests)."""
        self.shutting_down = True

    async def stop(self) -> None:
        """Watches end; then the shutdown hooks, the audit log, the TLS poller, the storage."""
        self.begin_shutdown()
        self.shutdown_event.set()
        for hook in self.shutdown_hooks:
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook failed")
        if self.auditor is not None:
            await self.auditor.sink.close()
        if self.tls is not None:
            await self.tls.stop()
        await self.backend.close()


async def serve(server: ExtServer, *, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                tls: DynamicTLS | None = None, shutdown_delay: float = 0.0,
                on_listening: Callable[[int], None] | None = None, stop: asyncio.Event | None = None,
                reuse_port: bool = False) -> int:
    """Serve until SIGTERM/SIGINT (or ``stop``); returns the exit code.

    ``tls`` (a ``tls.DynamicTLS``) gives the listener's context and reloads it; otherwise
    ``ssl_context`` is used as is. Shutdown, as kube's: ``/readyz`` fails at once; after
    ``shutdown_delay`` the listener closes, watches end, requests in flight finish (their
    responses written), then the server stops. A failing post-start hook stops the server
    with exit code 1. ``reuse_port``: bind with ``SO_REUSEPORT`` (``--workers``)."""
    if tls is not None:
        ssl_context = tls.context()
        server.tls = tls
        tls.start()
    await server.prepare()
    # what start-up loaded (the store's index, caches) is long-lived: keep it out of the
    # cyclic collector's full passes, which otherwise scan it all and pause the loop
    gc.collect()
    gc.freeze()
    app = server.make_app()
    drain_timeout = max(server.serving.request_timeout, 1.0) + 5.0
    # auto_decompress=False: like Go's net/http, a request's Content-Encoding is not applied
    # to its body (kube reads the bytes as sent)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=drain_timeout,
                           auto_decompress=False)
    await runner.setup()
    limits = server.serving.connections
    if not limits.max_connections:
        limits.max_connections = default_max_connections(_open_files_limit())
    site = LimitedSite(runner, host, port, ssl_context=ssl_context, limits=limits, backlog=1024,
                       reuse_address=True, reuse_port=bool(reuse_port))
    await site.start()
    server.connections = site.tracker
    bound = site.port
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    if on_listening:
        on_listening(bound)
    hooks = asyncio.create_task(server.run_post_start_hooks())
    hooks.add_done_callback(lambda t: stop.set() if not t.cancelled() and t.exception() else None)
    await stop.wait()
    code = 0
    if hooks.done() and not hooks.cancelled() and hooks.exception() is not None:
        log.error("post-start hook failed: %s", hooks.exception())
        code = 1
    elif not hooks.done():
        hooks.cancel()
    log.info("shutting down: /readyz fails now; the listener closes in %.1fs", shutdown_delay)
    server.begin_shutdown()
    if shutdown_delay > 0 and code == 0:
        await asyncio.sleep(shutdown_delay)
    for s in list(runner.sites):
        await s.stop()  # no new connections
    server.shutdown_event.set()  # watches end cleanly
    sockets = _open_sockets(runner.server.connections if runner.server is not None else [])
    await runner.cleanup()  # requests in flight finish, idle connections close
    await _flushed(sockets, drain_timeout)
    await server.stop()
    log.info("server stopped")
    return code


def _open_files_limit() -> int:
    try:
        import resource
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError, OSError):
        return 1024


def _open_sockets(connections: list) -> list[tuple[int, int]]:
    """(fd, inode) of the connections' sockets."""
    out = []
    for c in connections:
        sock = c.transport.get_extra_info("socket") if c.transport is not None else None
        if sock is not None:
            try:
                out.append((sock.fileno(), os.fstat(sock.fileno()).st_ino))
            except OSError:
                pass
    return out


def _unsent(fd: int, ino: int) -> int | None:
    """Bytes the kernel has not yet delivered on socket ``fd``; None once it is closed or
    when the platform cannot tell (Linux can)."""
    try:
        if os.fstat(fd).st_ino != ino:
            return None
    except OSError:
        return None
    if not hasattr(termios, "TIOCOUTQ"):
        return None
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except OSError:
        return None


async def _flushed(sockets: list[tuple[int, int]], timeout: float) -> None:
    """Wait (bounded) until what the closed connections still had to send has left: with
    TLS a finished response may still sit in the event loop's buffer of the raw socket
    (the TLS layer hands a whole body down at once) and would be lost when the loop stops.
    A socket is done when it is closed or its kernel send queue stayed empty across two
    polls (the loop, running meanwhile, would have refilled it from its own buffer); the
    TLS close_notify exchange is not waited for."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = {s: 0 for s in sockets}
    while pending and loop.time() < deadline:
        for sock in list(pending):
            n = _unsent(*sock)
            if n is None:
                del pending[sock]
            elif n == 0:
                pending[sock] += 1
                if pending[sock] >= 2:
                    del pending[sock]
            else:
                pending[sock] = 0
        if pending:
            await asyncio.sleep(0.05)
