"""Request info: what a request is about, parsed once from the URL (as Go's
``request.RequestInfoFactory``). Everything below the filters uses this, never the URL."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote

from multidict import MultiDictProxy

if TYPE_CHECKING:
    from aiohttp import web

    from .chain import Handler, RequestContext

_METHOD_VERB = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete"}


@dataclass(slots=True)
class RequestInfo:
    path: str
    verb: str  # kube verb for resource requests; lower-cased HTTP method otherwise
    is_resource_request: bool = False
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)

    @property
    def is_mutating(self) -> bool:
        return self.verb in ("create", "update", "patch", "delete", "deletecollection",
                             "post", "put", "delete")


def _truthy(v: str | None) -> bool:
    return v is not None and v.lower() in ("1", "true")


def parse_request_info(method: str, raw_path: str, query: MultiDictProxy | dict) -> RequestInfo:
    """Parse ``/apis/<group>/<version>/[namespaces/<ns>/]<resource>[/<name>[/<sub>]]``."""
    path = raw_path.split("?", 1)[0]
    segs = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    info = RequestInfo(path=path, verb=method.lower())
    if len(segs) < 3 or segs[0] != "apis":
        # /apis, /apis/<group>, /openapi/..., /healthz ...: non-resource
        return info
    info.api_prefix, info.api_group, info.api_version = segs[0], segs[1], segs[2]
    rest = segs[3:]
    if not rest:
        return info  # discovery of a group-version
    info.is_resource_request = True
    verb = _METHOD_VERB.get(method.upper(), method.lower())
    if rest[0] == "watch":  # deprecated /watch/ prefix
        verb = "watch"
        rest = rest[1:]
    if rest and rest[0] == "namespaces":
        if len(rest) > 1:
            info.namespace = rest[1]
            if len(rest) > 2:
                rest = rest[2:]
            else:
                # /namespaces/<ns> is the namespace object itself
                info.resource, info.name = "namespaces", rest[1]
                info.namespace = ""
                rest = []
        else:
            info.resource = "namespaces"
            rest = []
    if rest:
        info.resource = rest[0]
        if len(rest) > 1:
            info.name = rest[1]
        if len(rest) > 2:
            info.subresource = rest[2]
        info.parts = rest
    if verb == "get" or verb == "watch":
        if _truthy(query.get("watch")):
            verb = "watch"
        elif not info.name and verb == "get":
            verb = "list"
    if verb == "delete" and not info.name:
        verb = "deletecollection"
    info.verb = verb
    return info


#: verbs and subresources that hold a connection open (kube's ``LongRunningRequestCheck``
#: of the sample server): not counted by the in-flight limit, not cut by the request timeout
LONG_RUNNING_VERBS = frozenset({"watch", "proxy"})
LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "proxy", "log", "portforward"})


def is_long_running(info: RequestInfo) -> bool:
    return info.is_resource_request and (info.verb in LONG_RUNNING_VERBS
                                         or info.subresource in LONG_RUNNING_SUBRESOURCES)


def with_request_info(handler: Handler) -> Handler:
    """The request-info filter: parse the URL once into ``ctx.info``."""

    async def request_info(ctx: RequestContext) -> web.StreamResponse:
        r = ctx.request
        ctx.info = info = parse_request_info(r.method, r.raw_path, r.query)
        ctx.long_running = is_long_running(info)
        return await handler(ctx)

    return request_info
