"""The audit log (kube's ``WithAudit`` + the log backend): one ``audit.k8s.io/v1`` ``Event``
per stage of a request, as JSON lines in ``--audit-log-path`` (``-`` for stdout), at the
level the ``--audit-policy-file`` rules give (``None``, ``Metadata``, ``Request``,
``RequestResponse``). Stages: ``RequestReceived``, ``ResponseStarted`` (long-running
requests), ``ResponseComplete``, ``Panic``; a rule's (or the policy's) ``omitStages`` drops
some. Lines are written by a thread: the event loop only queues bytes."""
from __future__ import annotations

import asyncio
import logging
import os
import queue
import stat
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, AsyncIterator

import orjson
import yaml
from aiohttp import web
from aiohttp.streams import AsyncStreamIterator

from ..auth.user import UserInfo
from .chain import STATUS_ERROR_KEY, Handler, RequestContext
from .requestinfo import RequestInfo

log = logging.getLogger("extserver.audit")

NONE, METADATA, REQUEST, REQUEST_RESPONSE = 0, 1, 2, 3
LEVELS = {"None": NONE, "Metadata": METADATA, "Request": REQUEST, "RequestResponse": REQUEST_RESPONSE}
LEVEL_NAMES = {v: k for k, v in LEVELS.items()}
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
POLICY_API_VERSIONS = ("audit.k8s.io/v1",)
#: batches queued for the writer thread before events are dropped (and counted)
QUEUE_LIMIT = 1000
#: how long lines gather on the event loop before going to the writer thread as one batch
FLUSH_INTERVAL = 0.02


class PolicyError(ValueError):
    """An audit policy file that cannot be used (one line, for the command line)."""


# --- policy ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GroupResources:
    group: str
    resources: tuple[str, ...]
    resource_names: tuple[str, ...]

    def matches(self, info: RequestInfo) -> bool:
        if self.group != info.api_group:
            return False
        if not self.resources:
            return True
        if self.resource_names and info.name not in self.resource_names:
            return False
        res, sub = info.resource, info.subresource
        combined = f"{res}/{sub}" if sub else res
        for r in self.resources:
            if r == "*" or r == combined:
                return True
            if sub and r.startswith("*/") and r[2:] == sub:
                return True
            if r.endswith("/*") and r[:-2] == res:
                return True
        return False


@dataclass(frozen=True, slots=True)
class PolicyRule:
    level: int
    users: frozenset[str] = frozenset()
    user_groups: frozenset[str] = frozenset()
    verbs: frozenset[str] = frozenset()
    resources: tuple[GroupResources, ...] = ()
    namespaces: frozenset[str] = frozenset()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()

    def matches(self, user: UserInfo | None, info: RequestInfo) -> bool:
        """kube's ``ruleMatches``: every list given must match."""
        if self.users and (user is None or user.name not in self.users):
            return False
        if self.user_groups and (user is None or self.user_groups.isdisjoint(user.groups)):
            return False
        if self.verbs and info.verb not in self.verbs:
            return False
        if self.namespaces or self.resources:
            if not info.is_resource_request:
                return False
            if self.namespaces and info.namespace not in self.namespaces:
                return False
            return not self.resources or any(gr.matches(info) for gr in self.resources)
        if self.non_resource_urls:
            return not info.is_resource_request and any(_path_matches(info.path, p) for p in self.non_resource_urls)
        return True


def _path_matches(path: str, spec: str) -> bool:
    return spec == "*" or spec == path or (spec.endswith("*") and path.startswith(spec.rstrip("*")))


class AuditPolicy:
    """Ordered rules; the first that matches gives the level (none matching: ``None``)."""

    def __init__(self, rules: list[PolicyRule], omit_stages: frozenset[str] = frozenset()):
        self.rules = rules
        self.omit_stages = omit_stages

    def evaluate(self, user: UserInfo | None, info: RequestInfo) -> tuple[int, frozenset[str]]:
        for rule in self.rules:
            if rule.matches(user, info):
                return rule.level, rule.omit_stages
        return NONE, self.omit_stages

    @classmethod
    def load(cls, path: str | Path) -> "AuditPolicy":
        try:
            doc = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as e:
            raise PolicyError(f"--audit-policy-file {path}: {e}") from None
        try:
            return cls.from_dict(doc)
        except PolicyError as e:
            raise PolicyError(f"--audit-policy-file {path}: {e}") from None

    @classmethod
    def from_dict(cls, doc: Any) -> "AuditPolicy":
        if not isinstance(doc, dict):
            raise PolicyError("not an audit.k8s.io/v1 Policy object")
        if doc.get("apiVersion") not in POLICY_API_VERSIONS or doc.get("kind") != "Policy":
            raise PolicyError(f'apiVersion/kind must be audit.k8s.io/v1 Policy, got '
                              f'{doc.get("apiVersion")!r}/{doc.get("kind")!r}')
        omit = _stages(doc.get("omitStages"), "omitStages")
        raw_rules = doc.get("rules") or []
        if not isinstance(raw_rules, list) or not raw_rules:
            raise PolicyError("the policy has no rules")
        return cls([_rule(r, i, omit) for i, r in enumerate(raw_rules)], omit)


def _strings(v: Any, where: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise PolicyError(f"{where}: must be a list of strings")
    return tuple(v)


def _stages(v: Any, where: str) -> frozenset[str]:
    stages = _strings(v, where)
    for s in stages:
        if s not in STAGES:
            raise PolicyError(f'{where}: Unsupported value: "{s}": supported values: '
                              + ", ".join(f'"{x}"' for x in STAGES))
    return frozenset(stages)


def _rule(r: Any, i: int, policy_omit: frozenset[str]) -> PolicyRule:
    where = f"rules[{i}]"
    if not isinstance(r, dict):
        raise PolicyError(f"{where}: must be an object")
    level = r.get("level")
    if level not in LEVELS:
        raise PolicyError(f'{where}.level: Unsupported value: "{level}": supported values: '
                          + ", ".join(f'"{x}"' for x in LEVELS))
    groups = []
    for j, gr in enumerate(r.get("resources") or []):
        if not isinstance(gr, dict):
            raise PolicyError(f"{where}.resources[{j}]: must be an object")
        at = f"{where}.resources[{j}]"
        groups.append(GroupResources(str(gr.get("group") or ""), _strings(gr.get("resources"), f"{at}.resources"),
                                     _strings(gr.get("resourceNames"), f"{at}.resourceNames")))
    urls = _strings(r.get("nonResourceURLs"), f"{where}.nonResourceURLs")
    namespaces = _strings(r.get("namespaces"), f"{where}.namespaces")
    if urls and (groups or namespaces):
        raise PolicyError(f"{where}: rules cannot apply to both regular resources and non-resource URLs")
    for u in urls:
        if not u.startswith("/") and u != "*":
            raise PolicyError(f'{where}.nonResourceURLs: Invalid value: "{u}": non-resource URLs must start with "/"')
    return PolicyRule(LEVELS[level], frozenset(_strings(r.get("users"), f"{where}.users")),
                      frozenset(_strings(r.get("userGroups"), f"{where}.userGroups")),
                      frozenset(_strings(r.get("verbs"), f"{where}.verbs")), tuple(groups), frozenset(namespaces),
                      urls, policy_omit | _stages(r.get("omitStages"), f"{where}.omitStages"))


# --- the log backend -------------------------------------------------------------------------
def _open_private(path: str) -> IO[bytes]:
    """The audit log for appending, mode 0600 as kube writes it (an existing looser file is
    tightened)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
            os.fchmod(fd, st.st_mode & 0o600)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab")


class AuditLogSink:
    """JSON lines to a file (or stdout), written by one thread. ``write`` never blocks: lines
    gather on the event loop for ``FLUSH_INTERVAL`` and go to the thread as one batch (one
    thread wake-up per batch, not per event)."""

    def __init__(self, path: str):
        self.path = path
        # opened at startup (before serving): a path that cannot be written is a flag error
        self._file: IO[bytes] = sys.stdout.buffer if path == "-" else _open_private(path)
        self._queue: queue.Queue[tuple[int, bytes] | None] = queue.Queue(QUEUE_LIMIT)
        self._pending: list[bytes] = []
        self._flush_scheduled = False
        # started with the first batch: the sink is made before ``--workers`` forks, and a
        # thread does not survive a fork
        self._thread: threading.Thread | None = None
        self.events = 0
        self.dropped = 0

    def write(self, line: bytes) -> None:
        self._pending.append(line)
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop: hand it over now
            self._flush()
            return
        self._flush_scheduled = True
        loop.call_later(FLUSH_INTERVAL, self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._pending:
            return
        n, batch = len(self._pending), b"".join(self._pending)
        self._pending = []
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-log", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait((n, batch))
            self.events += n
        except queue.Full:
            self.dropped += n

    def _run(self) -> None:
        f = self._file
        while True:
            item = self._queue.get()
            if item is None:
                return
            n, batch = item
            try:
                f.write(batch)
                f.flush()
            except OSError as e:
                self.dropped += n
                log.error("cannot write the audit log %s: %s", self.path, e)

    async def close(self) -> None:
        """Write what is pending, then stop (the file is closed)."""
        self._flush()
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
        if self._file is not sys.stdout.buffer:
            await asyncio.to_thread(self._file.close)


# --- events ----------------------------------------------------------------------------------
_second: list = [None, ""]  # the last second formatted: (epoch second, "YYYY-MM-DDTHH:MM:SS")


def _micro_time(t: float) -> str:
    """RFC 3339 with microseconds, UTC (``metav1.MicroTime``)."""
    sec = int(t)
    us = round((t - sec) * 1_000_000)
    if us >= 1_000_000:
        sec, us = sec + 1, us - 1_000_000
    if _second[0] != sec:
        _second[0], _second[1] = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{_second[1]}.{us:06d}Z"


def _user(u: UserInfo | None) -> dict[str, Any]:
    if u is None:
        return {}
    d: dict[str, Any] = {"username": u.name}
    if u.uid:
        d["uid"] = u.uid
    if u.groups:
        d["groups"] = list(u.groups)
    if u.extra:
        d["extra"] = u.extra_dict
    return d


def source_ips(request: web.Request) -> list[str]:
    """kube's ``SourceIPs``: ``X-Forwarded-For``, then ``X-Real-Ip``, then the peer."""
    ips = [ip.strip() for ip in request.headers.get("X-Forwarded-For", "").split(",") if ip.strip()]
    real = request.headers.get("X-Real-Ip", "").strip()
    if real and real not in ips:
        ips.append(real)
    remote = request.remote
    if remote and remote not in ips:
        ips.append(remote)
    return ips


class AuditEvent:
    """One request's event; :meth:`line` renders it at a stage."""

    __slots__ = ("level", "omit", "audit_id", "request_uri", "verb", "user", "impersonated_user", "source_ips",
                 "user_agent", "object_ref", "received", "response_status", "request_object", "response_object",
                 "annotations")

    def __init__(self, ctx: RequestContext, level: int, omit: frozenset[str]):
        r, info = ctx.request, ctx.info
        self.level = level
        self.omit = omit
        self.audit_id = ctx.audit_id
        self.request_uri = r.raw_path
        self.verb = info.verb
        self.user = _user(ctx.user)
        self.impersonated_user: dict[str, Any] | None = None
        self.source_ips = source_ips(r)
        self.user_agent = r.headers.get("User-Agent", "")
        self.object_ref: dict[str, str] | None = None
        if info.is_resource_request:
            ref = {"resource": info.resource, "namespace": info.namespace, "name": info.name,
                   "apiGroup": info.api_group, "apiVersion": info.api_version, "subresource": info.subresource}
            self.object_ref = {k: v for k, v in ref.items() if v}
        self.received = ctx.received
        self.response_status: dict[str, Any] | None = None
        self.request_object: Any = None
        self.response_object: Any = None
        self.annotations: dict[str, str] = {}

    def log_impersonated_user(self, user: UserInfo) -> None:
        """kube's ``LogImpersonatedUser``: the identity the request runs as (the stages
        after ``RequestReceived`` carry it)."""
        self.impersonated_user = _user(user)

    def complete_object_ref(self, obj: Any) -> None:
        """kube's ``LogRequestObject``: what the URL does not say (a created object's name,
        uid, resourceVersion) comes from the request object's metadata."""
        md = obj.get("metadata") if isinstance(obj, dict) else None
        ref = self.object_ref
        if ref is None or not isinstance(md, dict):
            return
        filled = {}
        for key, src in (("resource", None), ("namespace", "namespace"), ("name", "name"), ("uid", "uid"),
                         ("apiGroup", None), ("apiVersion", None), ("resourceVersion", "resourceVersion"),
                         ("subresource", None)):
            v = ref.get(key) or (md.get(src) if src else None)
            if v and isinstance(v, str):
                filled[key] = v
        self.object_ref = filled

    def line(self, stage: str, now: float) -> bytes:
        d: dict[str, Any] = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": LEVEL_NAMES[self.level],
                             "auditID": self.audit_id, "stage": stage, "requestURI": self.request_uri,
                             "verb": self.verb, "user": self.user}
        if self.impersonated_user is not None:
            d["impersonatedUser"] = self.impersonated_user
        d["sourceIPs"] = self.source_ips
        if self.user_agent:
            d["userAgent"] = self.user_agent
        if self.object_ref is not None:
            d["objectRef"] = self.object_ref
        if self.response_status is not None and stage != "RequestReceived":
            d["responseStatus"] = self.response_status
        if self.request_object is not None:
            d["requestObject"] = self.request_object
        if self.response_object is not None and stage in ("ResponseComplete", "Panic"):
            d["responseObject"] = self.response_object
        d["requestReceivedTimestamp"] = _micro_time(self.received)
        d["stageTimestamp"] = _micro_time(self.received if stage == "RequestReceived" else now)
        if self.annotations:
            d["annotations"] = self.annotations
        return orjson.dumps(d) + b"\n"


def response_status(resp: web.StreamResponse) -> dict[str, Any]:
    """The response's status as the audit log has it: a ``Status`` error in full, else the code."""
    err = resp.get(STATUS_ERROR_KEY)
    if err is not None:
        st = err.status()
        return {k: st[k] for k in ("metadata", "status", "message", "reason", "details", "code") if k in st}
    return {"metadata": {}, "code": resp.status}


_JSON_TYPES = ("application/json", "application/merge-patch+json", "application/json-patch+json",
               "application/strategic-merge-patch+json")
_YAML_TYPES = ("application/yaml", "application/apply-patch+yaml")


def _decode_body(body: bytes, content_type: str) -> Any:
    """A request or response body as the event's object (None when not JSON/YAML)."""
    if not body:
        return None
    ctype = content_type.split(";", 1)[0].strip().lower()
    try:
        if ctype in _JSON_TYPES:
            return orjson.loads(body)
        if ctype in _YAML_TYPES:
            return yaml.safe_load(body)
    except (orjson.JSONDecodeError, yaml.YAMLError):
        return None
    return None


class _TeeStream:
    """The request body stream, keeping a copy of what the handler reads (up to ``limit``)
    for the ``requestObject`` and ``objectRef`` — read inside the timeout, as the handler
    reads it."""

    def __init__(self, inner: Any, limit: int):
        self._inner = inner
        self._limit = limit
        self.chunks: list[bytes] = []
        self._kept = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _keep(self, data: bytes) -> bytes:
        if data and self._kept < self._limit:
            self.chunks.append(data)
            self._kept += len(data)
        return data

    async def read(self, n: int = -1) -> bytes:
        return self._keep(await self._inner.read(n))

    async def readany(self) -> bytes:
        return self._keep(await self._inner.readany())

    def iter_chunked(self, n: int) -> AsyncStreamIterator[bytes]:
        return AsyncStreamIterator(lambda: self.read(n))

    def iter_any(self) -> AsyncStreamIterator[bytes]:
        return AsyncStreamIterator(self.readany)

    async def readline(self) -> bytes:
        return self._keep(await self._inner.readline())

    def __aiter__(self) -> AsyncIterator[bytes]:
        return AsyncStreamIterator(self.readline)


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _tee_body(request: web.Request, limit: int) -> _TeeStream:
    """Make ``request.content`` a :class:`_TeeStream` (aiohttp offers no way to replace a
    request's body stream: its ``_payload`` and the cached ``content`` property are set;
    ``test_filters_audit`` guards this against aiohttp changes)."""
    tee = _TeeStream(request._payload, limit)  # type: ignore[attr-defined]
    request._payload = tee  # type: ignore[attr-defined]
    request._cache["content"] = tee  # type: ignore[attr-defined]
    return tee


class Auditor:
    """Policy + sink: decides each request's level and records its stages."""

    def __init__(self, policy: AuditPolicy, sink: AuditLogSink, *, max_body_bytes: int = 3 * 1024 * 1024):
        self.policy = policy
        self.sink = sink
        self.max_body_bytes = max_body_bytes

    def emit(self, ev: AuditEvent, stage: str) -> None:
        if stage not in ev.omit:
            self.sink.write(ev.line(stage, time.time()))

    def begin(self, ctx: RequestContext) -> AuditEvent | None:
        """Evaluate the policy; record ``RequestReceived``. None when the level is ``None``."""
        level, omit = self.policy.evaluate(ctx.user, ctx.info)
        if level == NONE:
            return None
        ev = AuditEvent(ctx, level, omit)
        ctx.audit = ev
        self.emit(ev, "RequestReceived")
        return ev

    def complete(self, ev: AuditEvent, resp: web.StreamResponse, request_body: bytes | None,
                 request_ctype: str) -> None:
        if ev.response_status is None or ev.response_status.get("code") != resp.status:
            ev.response_status = response_status(resp)
        if request_body is not None:
            obj = _decode_body(request_body, request_ctype)
            ev.complete_object_ref(obj)
            if ev.level >= REQUEST:
                ev.request_object = obj
        if ev.level >= REQUEST_RESPONSE:
            err = resp.get(STATUS_ERROR_KEY)
            if err is not None:
                ev.response_object = err.status()
            elif isinstance(resp, web.Response) and isinstance(resp.body, bytes):
                ev.response_object = _decode_body(resp.body, resp.content_type)
        self.emit(ev, "ResponseComplete")

    def response_started(self, ctx: RequestContext, resp: web.StreamResponse) -> None:
        """A long-running request's response begins (its headers are being sent)."""
        ev = ctx.audit
        if ev is not None and ctx.long_running and ev.response_status is None:
            ev.response_status = {"metadata": {}, "code": resp.status}
            self.emit(ev, "ResponseStarted")

    def failed_authentication(self, ctx: RequestContext, resp: web.StreamResponse) -> None:
        """kube's ``WithFailedAuthenticationAudit``: a 401 is audited too (no user)."""
        ev = self.begin(ctx)
        if ev is not None:
            self.complete(ev, resp, None, "")


def with_audit(handler: Handler, auditor: Auditor) -> Handler:
    async def audit(ctx: RequestContext) -> web.StreamResponse:
        ev = auditor.begin(ctx)
        if ev is None:
            return await handler(ctx)
        request = ctx.request
        tee = _tee_body(request, auditor.max_body_bytes) if request.method in _BODY_METHODS else None
        try:
            resp = await handler(ctx)
        except (asyncio.CancelledError, ConnectionResetError):
            # the client went away (a watch's usual end): the response is complete
            if ev.response_status is None:
                ev.response_status = {"metadata": {}, "status": "Success", "message": "Connection closed early",
                                      "code": 200}
            auditor.emit(ev, "ResponseComplete")
            raise
        except Exception as e:
            ev.response_status = {"metadata": {}, "status": "Failure", "reason": "InternalError",
                                  "message": f"APIServer panic'd: {e}", "code": 500}
            auditor.emit(ev, "Panic")
            raise
        auditor.complete(ev, resp, b"".join(tee.chunks) if tee is not None else None,
                         request.headers.get("Content-Type", ""))
        return resp

    return audit
