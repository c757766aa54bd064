"""TEST STAND-IN for the main kube-apiserver. It is NOT a kube-apiserver and is used by
tests only.

It speaks, over real HTTPS (its own CA, a serving certificate for 127.0.0.1, client
certificates or a bearer token for its callers), exactly the endpoints an extension
apiserver calls on the main apiserver for delegated authentication and authorization
(nothing else):

- ``POST /apis/authentication.k8s.io/v1/tokenreviews`` -- answers from :meth:`add_token`
- ``POST /apis/authorization.k8s.io/v1/subjectaccessreviews`` -- answers from the
  programmable :attr:`sar_policy` (default: allow the users of :meth:`allow_users`, and
  the single ``resourceAttributes`` granted by :meth:`grant` -- a stand-in for RBAC rules,
  e.g. the ``impersonate`` verb on ``users/bob``)
- ``GET /api/v1/namespaces/kube-system/configmaps[/<name>]`` with ``fieldSelector=
  metadata.name=<name>``, list and ``watch=1&resourceVersion=..`` (``ERROR`` 410 after
  :meth:`compact`), changed by :meth:`set_configmap`;
- for features that read them from the cluster (the metrics APIs' pods and nodes, the
  NamespaceLifecycle admission): ``GET /api/v1/namespaces[/<name>]``, ``/api/v1/nodes[/<name>]``,
  ``/api/v1/pods`` and ``/api/v1/namespaces/<ns>/pods[/<name>]``, list and watch with the same
  resourceVersion and event semantics, changed by :meth:`set_namespace`, :meth:`set_node` and
  :meth:`set_pod`; every other path is ``404``.

Every review received is recorded (:attr:`token_reviews`, :attr:`access_reviews`) with
the caller's identity. The server runs in a thread with its own event loop, on
127.0.0.1 and a free port; :meth:`stop` ends it."""
from __future__ import annotations

import asyncio
import base64
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson
import yaml
from aiohttp import web

from extserver.server import certs

TOKENREVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SARS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
CALLER_TOKEN = "standin-caller-token"
CALLER_CN = "extserver-delegator"


def status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    return web.Response(body=orjson.dumps(body), status=code, content_type="application/json")


@dataclass
class Review:
    """One review as received: the caller and the request body."""

    caller: str
    body: dict

    @property
    def spec(self) -> dict:
        return self.body.get("spec") or {}


@dataclass
class _Watcher:
    kind: str
    name: str  # "" = every object of the kind
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    namespace: str = ""  # "" = every namespace (pods)


class KubeAPIServerStandin:
    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ca = certs.new_ca("kube-apiserver-standin-ca")
        self.serving = certs.issue(self.ca, "kube-apiserver-standin", dns=["localhost"], ips=["127.0.0.1"],
                                   server=True)
        self.client_ca = certs.new_ca("kube-apiserver-standin-client-ca")
        self.caller = certs.issue(self.client_ca, CALLER_CN, orgs=["system:authenticated"], client=True)
        self.url = ""
        # programmable behaviour (set from the test thread; read on the server loop)
        self.tokens: dict[str, dict] = {}
        self.allowed_users: set[str] = set()
        self.grants: list[tuple[str, dict[str, str]]] = []  # (user, resourceAttributes allowed exactly)
        self.sar_policy: Callable[[dict], dict] = self._default_policy
        self.sar_error: tuple[int, str, str] | None = None
        self.token_error: tuple[int, str, str] | None = None
        # what was received
        self.token_reviews: list[Review] = []
        self.access_reviews: list[Review] = []
        self.requests: list[tuple[str, str]] = []  # (method, path?query) of every request
        # objects: kind -> name -> object; one resourceVersion counter; event history
        self._rv = 100
        self._objects: dict[str, dict[str, dict]] = {"configmaps": {}, "namespaces": {}, "nodes": {}, "pods": {}}
        self._history: list[tuple[int, str, str, dict]] = []  # (rv, kind, type, object)
        self._compacted = 0
        self._watchers: list[_Watcher] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    # --- programming it (from the test) ---------------------------------------------------
    def add_token(self, token: str, username: str, *, uid: str = "", groups: list[str] | None = None,
                  extra: dict[str, list[str]] | None = None) -> None:
        self.tokens[token] = {"username": username, "uid": uid, "groups": groups or [], "extra": extra or {}}

    def allow_users(self, *names: str) -> None:
        self.allowed_users.update(names)

    def grant(self, user: str, **resource_attributes: str) -> None:
        """Allow ``user`` the review whose ``resourceAttributes`` are exactly these (unset
        fields absent), e.g. ``grant("alice", verb="impersonate", version="v1",
        resource="users", name="bob")``."""
        self.grants.append((user, dict(resource_attributes)))

    def _default_policy(self, spec: dict) -> dict:
        attrs = spec.get("resourceAttributes")
        granted = attrs is not None and (spec.get("user"), attrs) in self.grants
        return {"allowed": granted or spec.get("user") in self.allowed_users}

    def set_configmap(self, name: str, data: dict[str, str] | None, namespace: str = "kube-system") -> None:
        """Create, replace (data) or delete (None) a ConfigMap in ``kube-system``."""
        assert namespace == "kube-system"
        self._call(self._put, "configmaps", name, None if data is None else {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}, "data": dict(data)})

    def set_namespace(self, name: str, phase: str | None = "Active") -> None:
        """Create or replace (phase) or delete (None) a Namespace."""
        self._call(self._put, "namespaces", name, None if phase is None else {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": phase}})

    def set_node(self, name: str, labels: dict[str, str] | None = None, *, delete: bool = False) -> None:
        """Create, replace or delete (``delete``) a Node."""
        self._call(self._put, "nodes", name, None if delete else {
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": dict(labels or {})},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}})

    def set_pod(self, namespace: str, name: str, labels: dict[str, str] | None = None, *, phase: str = "Running",
                containers: list[str] = ("main",), delete: bool = False) -> None:
        """Create, replace or delete (``delete``) a Pod (keyed ``<namespace>/<name>``)."""
        self._call(self._put, "pods", f"{namespace}/{name}", None if delete else {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
            "spec": {"containers": [{"name": c, "image": "standin"} for c in containers]},
            "status": {"phase": phase}})

    def compact(self) -> None:
        """Forget the event history: watches from an older resourceVersion get 410."""
        def run() -> None:
            self._compacted = self._rv
            self._history.clear()
        self._call_sync(run)

    def close_watches(self) -> None:
        """End every open watch (clients must resume from their last resourceVersion)."""
        self._call_sync(lambda: [w.queue.put_nowait(None) for w in self._watchers])

    def open_watches(self, kind: str) -> int:
        return sum(1 for w in list(self._watchers) if w.kind == kind)

    # --- lifecycle ----------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> "KubeAPIServerStandin":
        self._thread = threading.Thread(target=self._run, name="kube-apiserver-standin", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout) or self._error is not None:
            raise RuntimeError(f"stand-in did not start: {self._error!r}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:  # reported by start()
            self._error = e
            self._started.set()
        finally:
            loop.close()

    def _ssl(self):
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert, key = self.workdir / "standin.crt", self.workdir / "standin.key"
        certs.write_private(cert, self.serving.cert_pem + self.ca.cert_pem)
        certs.write_private(key, self.serving.key_pem)
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(cadata=self.client_ca.cert_pem.decode())
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self._ssl())
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"https://127.0.0.1:{port}"
        self._started.set()
        await self._stop.wait()
        for w in self._watchers:
            w.queue.put_nowait(None)
        await runner.cleanup()

    def _call(self, fn: Callable, *args: Any) -> Any:
        assert self._loop is not None

        async def run() -> Any:
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def _call_sync(self, fn: Callable[[], Any]) -> Any:
        return self._call(fn)

    # --- kubeconfig -----------------------------------------------------------------------
    def write_kubeconfig(self, path: Path, *, use_token: bool = False) -> Path:
        """A kubeconfig for this stand-in: its CA, and a client certificate (or a token)."""
        b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
        user: dict[str, str] = {"token": CALLER_TOKEN} if use_token else {
            "client-certificate-data": b64(self.caller.cert_pem), "client-key-data": b64(self.caller.key_pem)}
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "standin",
               "clusters": [{"name": "standin", "cluster": {"server": self.url,
                                                            "certificate-authority-data": b64(self.ca.cert_pem)}}],
               "users": [{"name": "delegator", "user": user}],
               "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "delegator"}}]}
        certs.write_private(Path(path), yaml.safe_dump(cfg).encode())
        return Path(path)

    # --- objects, on the loop -------------------------------------------------------------
    def _put(self, kind: str, name: str, obj: dict | None) -> None:
        store = self._objects[kind]
        old = store.get(name)
        if obj is None and old is None:
            return
        self._rv += 1
        if obj is None:
            typ, ev_obj = "DELETED", dict(old, metadata=dict(old["metadata"], resourceVersion=str(self._rv)))
            del store[name]
        else:
            typ = "MODIFIED" if old is not None else "ADDED"
            md = dict(obj["metadata"], resourceVersion=str(self._rv))
            if old is not None:
                md["uid"], md["creationTimestamp"] = old["metadata"]["uid"], old["metadata"]["creationTimestamp"]
            else:
                md["uid"] = f"uid-{kind}-{name}-{self._rv}"
                md["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            ev_obj = dict(obj, metadata=md)
            store[name] = ev_obj
        self._history.append((self._rv, kind, typ, ev_obj))
        for w in self._watchers:
            if w.kind == kind and (not w.name or w.name == name) and _in_namespace(ev_obj, w.namespace):
                w.queue.put_nowait((typ, ev_obj))

    # --- HTTP ---------------------------------------------------------------------------
    def _caller(self, request: web.Request) -> str | None:
        sslobj = request.transport.get_extra_info("ssl_object") if request.transport else None
        cert = sslobj.getpeercert() if sslobj is not None else None
        if cert:
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        return str(v)
        if request.headers.get("Authorization", "") == f"Bearer {CALLER_TOKEN}":
            return "token-caller"
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        caller = self._caller(request)
        if caller is None:
            return status(401, "Unauthorized", "Unauthorized")
        path = request.path
        if request.method == "POST" and path == TOKENREVIEWS:
            return await self._token_review(request, caller)
        if request.method == "POST" and path == SARS:
            return await self._access_review(request, caller)
        if request.method != "GET":
            return status(405, "MethodNotAllowed", f"{request.method} is not supported by the stand-in")
        parts = path.strip("/").split("/")
        if parts[:5] == ["api", "v1", "namespaces", "kube-system", "configmaps"] and len(parts) in (5, 6):
            return await self._read(request, "configmaps", parts[5] if len(parts) == 6 else "")
        if parts[:2] == ["api", "v1"] and len(parts) in (3, 4) and parts[2] in ("namespaces", "nodes", "pods"):
            if parts[2] == "pods" and len(parts) == 4:
                return status(404, "NotFound", "the server could not find the requested resource")
            return await self._read(request, parts[2], parts[3] if len(parts) == 4 else "")
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) in (5, 6) and parts[4] == "pods":
            return await self._read(request, "pods", f"{parts[3]}/{parts[5]}" if len(parts) == 6 else "",
                                    namespace=parts[3])
        return status(404, "NotFound", "the server could not find the requested resource")

    async def _token_review(self, request: web.Request, caller: str) -> web.Response:
        body = orjson.loads(await request.read())
        self.token_reviews.append(Review(caller, body))
        if self.token_error is not None:
            return status(*self.token_error)
        user = self.tokens.get((body.get("spec") or {}).get("token", ""))
        st: dict[str, Any] = {"authenticated": True, "user": user} if user else {"user": {}}
        return web.json_response(dict(body, status=st), status=201, dumps=lambda o: orjson.dumps(o).decode())

    async def _access_review(self, request: web.Request, caller: str) -> web.Response:
        body = orjson.loads(await request.read())
        self.access_reviews.append(Review(caller, body))
        if self.sar_error is not None:
            return status(*self.sar_error)
        st = self.sar_policy(body.get("spec") or {})
        return web.json_response(dict(body, status=st), status=201, dumps=lambda o: orjson.dumps(o).decode())

    async def _read(self, request: web.Request, kind: str, name: str, namespace: str = "") -> web.StreamResponse:
        singular = {"configmaps": "ConfigMap", "namespaces": "Namespace", "nodes": "Node", "pods": "Pod"}[kind]
        store = self._objects[kind]
        if name:
            obj = store.get(name)
            if obj is None:
                return status(404, "NotFound", f'{kind} "{name.rpartition("/")[2]}" not found')
            return web.json_response(obj, dumps=lambda o: orjson.dumps(o).decode())
        sel = request.query.get("fieldSelector", "")
        want = ""
        if sel:
            if not sel.startswith("metadata.name="):
                return status(400, "BadRequest", f"stand-in: unsupported fieldSelector {sel!r} for {singular}")
            want = sel[len("metadata.name="):]
        if request.query.get("watch") in ("1", "true"):
            return await self._watch(request, kind, want, namespace)
        items = [o for n, o in sorted(store.items()) if (not want or n == want) and _in_namespace(o, namespace)]
        return web.json_response({"apiVersion": "v1", "kind": singular + "List",
                                  "metadata": {"resourceVersion": str(self._rv)}, "items": items},
                                 dumps=lambda o: orjson.dumps(o).decode())

    async def _watch(self, request: web.Request, kind: str, want: str, namespace: str = "") -> web.StreamResponse:
        rv_s = request.query.get("resourceVersion", "")
        timeout = min(float(request.query.get("timeoutSeconds", "1800")), 1800.0)
        w = _Watcher(kind, want, namespace=namespace)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})

        async def send(typ: str, obj: dict) -> None:
            await resp.write(orjson.dumps({"type": typ, "object": obj}) + b"\n")

        # what to replay is decided now, atomically with registering for live events
        initial: list[tuple[str, dict]]
        if rv_s in ("", "0"):
            initial = [("ADDED", o) for n, o in sorted(self._objects[kind].items())
                       if (not want or n == want) and _in_namespace(o, namespace)]
        elif int(rv_s) < self._compacted:
            initial = [("ERROR", {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                  "message": f"too old resource version: {rv_s} ({self._compacted})",
                                  "reason": "Expired", "code": 410})]
        else:
            initial = [(typ, obj) for ev_rv, k, typ, obj in self._history
                       if ev_rv > int(rv_s) and k == kind and (not want or obj["metadata"]["name"] == want)
                       and _in_namespace(obj, namespace)]
        self._watchers.append(w)
        try:
            await resp.prepare(request)
            for typ, obj in initial:
                await send(typ, obj)
            if initial and initial[0][0] == "ERROR":
                return resp
            deadline = asyncio.get_running_loop().time() + timeout
            for _ in range(1_000_000):  # bounded by the deadline as well
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(w.queue.get(), left)
                except asyncio.TimeoutError:
                    break
                if item is None:
                    break
                await send(*item)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watchers.remove(w)
        return resp


def _in_namespace(obj: dict, namespace: str) -> bool:
    return not namespace or (obj.get("metadata") or {}).get("namespace") == namespace
