"""Verb handlers for resource requests (as ``k8s.io/apiserver/pkg/endpoints/handlers``):
decode + negotiate -> registry (strategy, admission, storage) -> encode."""
from __future__ import annotations

import asyncio
import datetime as _dt
import random
from typing import Any, Callable

import orjson
import yaml
from aiohttp import web

from ..api import ServedVersion
from ..machinery import errors as E
from ..machinery import limits
from ..machinery import negotiation as N
from ..machinery.decoding import decode_delete_options, decode_versioned, parse_body
from ..machinery.humanize import human_duration
from ..machinery.meta import parse_rfc3339
from ..machinery.patch import (apply_json_patch, apply_merge_patch, decode_json_patch, decode_merge_patch,
                               decode_strategic_merge_patch, strategic_merge_patch)
from ..machinery.schema_validation import SchemaValidator
from ..machinery.selectors import FieldSelector, LabelSelector
from ..machinery.validation import go_quote, validate_path_segment_name
from ..registry import fieldmanager
from ..registry.resource_version import parse_resource_version
from ..registry.store import DeleteOptions, ListOptions, Registry
from ..registry.watch import RegistryWatch, WatchEvent
from ..storage.interface import KeyValue, StorageError
from ..storage.slowwatch import WATCH_CLOSER
from .encode_stream import write_list
from ..filters.requestinfo import RequestInfo

STATUS_SUCCESS_KIND = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}


class HandlerConfig:
    def __init__(self, *, max_body_bytes: int = 3 * 1024 * 1024, min_request_timeout: float = 1800.0,
                 bookmark_interval: float = 60.0, provider_timeout: float = 10.0):
        self.max_body_bytes = max_body_bytes
        self.min_request_timeout = min_request_timeout
        self.bookmark_interval = bookmark_interval
        #: the deadline of one call into a provider kind's code (``--provider-timeout``)
        self.provider_timeout = provider_timeout


def _q(request: web.Request, name: str, default: str = "") -> str:
    return request.query.get(name, default)


def _int_param(request: web.Request, name: str) -> int | None:
    """An integer query parameter as kube's parameter codec converts it (Go's
    ``strconv.ParseInt(v, 10, 64)``); 400 with Go's error text, as kube answers."""
    v = request.query.get(name)
    if v is None or v == "":
        return None
    body = v[1:] if v[:1] in ("+", "-") else v
    if body.isascii() and body.isdigit():
        n = int(v)
        if -(1 << 63) <= n < (1 << 63):
            return n
        raise E.BadRequest(f"strconv.ParseInt: parsing {go_quote(v)}: value out of range")
    raise E.BadRequest(f"strconv.ParseInt: parsing {go_quote(v)}: invalid syntax")


def _bool(v: str) -> bool:
    """Go's ``strconv.ParseBool`` true values (``pretty``; a malformed value is false)."""
    return v in ("1", "t", "T", "TRUE", "true", "True")


def _options_bool(request: web.Request, name: str) -> bool | None:
    """A boolean of ListOptions/PatchOptions as kube's parameter codec reads it: absent is
    None; "0" and "false" (any case) are false; anything else, "" included, is true."""
    v = request.query.get(name)
    if v is None:
        return None
    return not (v == "0" or v.lower() == "false")


def dump(doc: Any, out: N.Output) -> bytes:
    if out.media == "yaml":
        return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False).encode()
    if out.pretty:
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"
    return orjson.dumps(doc)


def respond(doc: Any, out: N.Output, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    resp = web.Response(body=dump(doc, out), status=status, content_type=out.content_type)
    add_warnings(resp, warnings)
    return resp


_HEADER_CONTROLS = {c: " " for c in range(32) if c != 9} | {127: " "}


def add_warnings(resp: web.StreamResponse, warnings: list[str] | None) -> None:
    """``Warning: 299 - "text"`` per warning, quoted as apimachinery's NewWarningHeader; a
    control character (an unknown field's name may hold one) goes out as a space, as Go's
    net/http writes CR/LF in header values."""
    for w in warnings or ():
        w = w.translate(_HEADER_CONTROLS)
        resp.headers.add("Warning", '299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"')


def table_head(cols: list, md: dict, conv_version: str, headers: bool = True) -> dict:
    """A ``meta.k8s.io`` Table's fields before its rows (``columnDefinitions`` null when
    ``headers`` is false, as kube sends watch events after the first)."""
    t: dict[str, Any] = {"kind": "Table", "apiVersion": f"meta.k8s.io/{conv_version}", "metadata": md}
    t["columnDefinitions"] = [
        {"name": c.name, "type": c.type, "format": "" if c.format == "age" else c.format,
         "description": c.description, "priority": c.priority} for c in cols] if headers else None
    return t


def table_cells(cols: list, hub: Any, now: _dt.datetime) -> list:
    """One row's cells; ``age`` columns as kube's human duration since the timestamp."""
    cells = []
    for c in cols:
        v = c.value(hub)
        if c.format == "age":
            v = human_duration((now - parse_rfc3339(v)).total_seconds()) if v else "<unknown>"
        cells.append(v)
    return cells


def table_doc(cols: list, entries: list, md: dict, conv_version: str, include: str, headers: bool = True) -> dict:
    """A whole Table: ``entries`` are (hub object, full object thunk, metadata-only thunk);
    ``include`` is ``includeObject`` (None, Metadata, Object)."""
    now = _dt.datetime.now(_dt.timezone.utc)
    rows = []
    for hub, full, pom in entries:
        row: dict[str, Any] = {"cells": table_cells(cols, hub, now)}
        if include == "Object":
            row["object"] = full()
        elif include != "None":
            row["object"] = pom()
        rows.append(row)
    t = table_head(cols, md, conv_version, headers)
    t["rows"] = rows
    return t


#: a pushed watch pauses while more than this many bytes wait to go to its client
PUSH_HIGH_WATER = 256 * 1024


async def push_events(events: RegistryWatch, transport: asyncio.Transport,
                      encode: Callable[[list[WatchEvent]], bytes]) -> bool:
    """Serve a caught-up watch by push: the storage calls back as each write is applied and
    the events go straight to the connection, one HTTP/1.1 chunk per batch, in the same
    pass for every watcher of the resource (aiohttp's ``write`` is a coroutine: a task
    wake-up per event per watcher, which at a thousand watchers was the fan-out's whole
    cost). Returns False when the stream ended (raises the StatusError it ended with), True
    when the client fell behind (the caller goes back to writing with back-pressure, and
    the undelivered events wait in the storage under the slow-watcher rule)."""
    done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def on_events() -> None:
        """Everything ready now (a backlog comes in batches), while the client keeps up."""
        try:
            while not done.done():
                if transport.is_closing():
                    done.set_result(False)
                elif transport.get_write_buffer_size() > PUSH_HIGH_WATER:
                    done.set_result(True)
                elif (batch := events.poll()) is None:
                    done.set_result(False)
                elif not batch:
                    return
                elif data := encode(batch):
                    transport.write(b"%x\r\n%s\r\n" % (len(data), data))
        except Exception as exc:  # noqa: BLE001 - called by the storage's fan-out: never into it
            done.set_exception(exc)

    events.listen(on_events)
    try:
        on_events()  # what arrived since the last batch
        behind = await done
    finally:
        events.listen(None)
    while behind and not transport.is_closing() and transport.get_write_buffer_size() > PUSH_HIGH_WATER // 4:
        await asyncio.sleep(0.01)  # bounded: a client that stays behind is cut off by the storage
    return behind and not transport.is_closing()


class ResourceHandler:
    """All verbs of one resource at one version."""

    def __init__(self, registry: Registry, sv: ServedVersion, config: HandlerConfig):
        self.registry = registry
        self.sv = sv
        self.codec = registry.codec
        self.config = config
        self.res = registry.resource
        self.strategy = registry.strategy
        self._validator: SchemaValidator | None = None

    # --- entry --------------------------------------------------------------------------
    async def handle(self, request: web.Request, info: RequestInfo, user) -> web.StreamResponse:
        try:
            return await self._handle(request, info, user)
        except StorageError as e:  # etcd unreachable, disk failure, ...: kube's storage InternalError
            raise E.InternalError(str(e)) from None

    def _check_path(self, info: RequestInfo) -> None:
        """404/400 for a path the resource does not have (scope, names, subresource)."""
        res = self.res
        if info.namespace and not res.namespaced:
            raise E.PathNotFound()
        if res.namespaced and not info.namespace and info.name:
            raise E.PathNotFound()
        if info.name:
            errs = validate_path_segment_name(info.name, False)
            if errs:
                raise E.BadRequest(f'invalid resource name "{info.name}": [{", ".join(errs)}]')
        if info.namespace:
            errs = validate_path_segment_name(info.namespace, False)
            if errs:
                raise E.BadRequest(f'invalid namespace "{info.namespace}": [{", ".join(errs)}]')
        if info.subresource and (info.subresource not in res.subresources or len(info.parts) > 3):
            raise E.PathNotFound()

    async def _handle(self, request: web.Request, info: RequestInfo, user) -> web.StreamResponse:
        res = self.res
        self._check_path(info)
        verb = info.verb
        # a verb with no route (not offered, a collection's update, a named create...) is
        # go-restful's 405, as for a REST storage that does not implement it
        if verb not in res.verbs and verb not in ("get", "list", "watch"):
            raise E.MethodNotAllowed()
        if info.subresource == "status" and verb not in ("get", "update", "patch"):
            raise E.MethodNotAllowed()
        pretty = _bool(_q(request, "pretty", "false"))
        if verb == "get":
            return await self.get(request, info, pretty)
        if verb == "list":
            return await self.list(request, info, pretty)
        if verb == "watch":
            return await self.watch(request, info)
        if verb in ("update", "patch") and not info.name:
            raise E.MethodNotAllowed()
        if verb == "create":
            if info.name:
                raise E.MethodNotAllowed()
            return await self.create(request, info, user, pretty)
        if verb == "update":
            return await self.update(request, info, user, pretty)
        if verb == "patch":
            return await self.patch(request, info, user, pretty)
        if verb == "delete":
            return await self.delete(request, info, user, pretty)
        if verb == "deletecollection":
            return await self.delete_collection(request, info, user, pretty)
        raise E.MethodNotAllowed()

    # --- encoding -----------------------------------------------------------------------
    def _object_response(self, request: web.Request, kv: KeyValue, pretty: bool, status: int = 200,
                         warnings: list[str] | None = None, out: N.Output | None = None) -> web.Response:
        out = out or N.negotiate(request.headers.get("Accept"), pretty=pretty,
                                 allowed_conv=("Table", "PartialObjectMetadata"))
        if out.conv == "" and out.media == "json" and not out.pretty:
            body = self.codec.versioned_bytes(kv, self.sv.version)
            resp = web.Response(body=body, status=status, content_type=N.JSON)
            add_warnings(resp, warnings)
            return resp
        return respond(self._convert_one(kv, out, request), out, status, warnings)

    def _convert_one(self, kv: KeyValue, out: N.Output, request: web.Request) -> dict:
        if out.conv == "PartialObjectMetadata":
            return self._pom(kv, out.conv_version)
        if out.conv == "Table":
            return self._table([kv], str(kv.mod_revision), "", out, request)
        return self.codec.versioned_dict(kv, self.sv.version)

    def _pom(self, kv: KeyValue, v: str = "v1") -> dict:
        return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{v}",
                "metadata": self.codec.metadata(kv)}

    def _table(self, kvs: list[KeyValue], rv: str, cont: str, out: N.Output, request: web.Request,
               remaining: int | None = None, headers: bool = True) -> dict:
        t = self._table_head(rv, cont, out, remaining, headers)
        row = self._table_row_encoder(out, request)
        t["rows"] = [row(kv) for kv in kvs]
        return t

    def _table_head(self, rv: str, cont: str, out: N.Output, remaining: int | None = None,
                    headers: bool = True) -> dict:
        """A Table's fields before its rows."""
        md: dict[str, Any] = {"resourceVersion": rv}
        if cont:
            md["continue"] = cont
        if remaining:
            md["remainingItemCount"] = remaining
        return table_head(self.strategy.table_columns(), md, out.conv_version, headers)

    def _table_row_encoder(self, out: N.Output, request: web.Request):
        """``kv -> row`` for one response (columns, ``includeObject`` and "now" fixed once)."""
        cols = self.strategy.table_columns()
        include = _q(request, "includeObject", "Metadata")
        now = _dt.datetime.now(_dt.timezone.utc)

        def row(kv: KeyValue) -> dict:
            r: dict[str, Any] = {"cells": table_cells(cols, self.codec.hub(kv), now)}
            if include == "Object":
                r["object"] = self.codec.versioned_dict(kv, self.sv.version)
            elif include != "None":
                r["object"] = self._pom(kv, out.conv_version)
            return r
        return row

    # --- reads --------------------------------------------------------------------------
    async def get(self, request: web.Request, info: RequestInfo, pretty: bool) -> web.Response:
        out = N.negotiate(request.headers.get("Accept"), pretty=pretty,
                          allowed_conv=("Table", "PartialObjectMetadata"))
        kv = await self.registry.get(info.namespace, info.name, _q(request, "resourceVersion"))
        return self._object_response(request, kv, pretty, out=out)

    def _list_options(self, request: web.Request, info: RequestInfo) -> ListOptions:
        ls = fs = None
        sel = _q(request, "labelSelector")
        if sel:
            try:
                ls = LabelSelector.parse(sel)
            except ValueError as e:
                raise E.BadRequest(str(e)) from None  # labels.Parse's own words, as the parameter codec
        fsel = _q(request, "fieldSelector")
        if info.name:  # a watch on one object
            fsel = f"metadata.name={info.name}" + ("," + fsel if fsel else "")
        if fsel:
            try:
                fs = FieldSelector.parse(fsel)
            except ValueError as e:
                raise E.BadRequest(str(e)) from None
        limit = _int_param(request, "limit") or 0
        _int_param(request, "timeoutSeconds")  # refused when malformed, for lists too
        rvm = _q(request, "resourceVersionMatch")
        if rvm not in ("", "NotOlderThan", "Exact"):
            raise E.Invalid("meta.k8s.io", "ListOptions", "", [E.not_supported(
                "resourceVersionMatch", rvm, ["Exact", "NotOlderThan", ""])])
        opts = ListOptions(ls, fs, max(limit, 0), _q(request, "continue"), _q(request, "resourceVersion"), rvm)
        parse_resource_version(opts.resource_version)  # 400 before a watch starts streaming
        if opts.continue_token and opts.resource_version not in ("", "0"):
            raise E.BadRequest('specifying resource version is not allowed when using continue')
        initial_events_watch = info.verb == "watch" and bool(_options_bool(request, "sendInitialEvents"))
        if rvm and not opts.resource_version and not initial_events_watch:
            raise E.Invalid("meta.k8s.io", "ListOptions", "", [E.forbidden(
                "resourceVersionMatch", "resourceVersionMatch is forbidden unless resourceVersion is provided")])
        if rvm == "Exact" and opts.resource_version == "0":
            raise E.Invalid("meta.k8s.io", "ListOptions", "", [E.forbidden(
                "resourceVersionMatch", 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"')])
        return opts

    async def list(self, request: web.Request, info: RequestInfo, pretty: bool) -> web.StreamResponse:
        out = N.negotiate(request.headers.get("Accept"), pretty=pretty,
                          allowed_conv=("Table", "PartialObjectMetadataList"))
        opts = self._list_options(request, info)
        r = await self.registry.list(info.namespace, opts)
        rv = str(r.revision)
        # written in slices with back-pressure (encode_stream): a big list never blocks the loop
        if out.conv == "Table":
            return await write_list(request, out, self._table_head(rv, r.continue_token, out, r.remaining), "rows",
                                    r.items, self._table_row_encoder(out, request))
        md: dict[str, Any] = {"resourceVersion": rv}
        if r.continue_token:
            md["continue"] = r.continue_token
        if r.remaining:
            md["remainingItemCount"] = r.remaining
        if out.conv == "PartialObjectMetadataList":
            cv = out.conv_version
            return await write_list(request, out, {"kind": "PartialObjectMetadataList",
                                                   "apiVersion": f"meta.k8s.io/{cv}", "metadata": md},
                                    "items", r.items, lambda kv: self._pom(kv, cv))
        head = {"apiVersion": self.sv.api_version, "kind": self.sv.list_kind, "metadata": md}
        v = self.sv.version
        if out.media == "json" and not out.pretty:  # the stored bytes, re-encoded once per version
            vb = self.codec.versioned_bytes
            return await write_list(request, out, head, "items", r.items, lambda kv: vb(kv, v))
        vd = self.codec.versioned_dict
        return await write_list(request, out, head, "items", r.items, lambda kv: vd(kv, v))

    async def watch(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        out = N.negotiate(request.headers.get("Accept"), allowed_conv=("Table", "PartialObjectMetadata"))
        opts = self._list_options(request, info)
        opts.limit = 0
        bookmarks = bool(_options_bool(request, "allowWatchBookmarks"))
        send_initial = _options_bool(request, "sendInitialEvents")
        if send_initial is not None:
            if send_initial and (opts.resource_version_match != "NotOlderThan" or not bookmarks):
                raise E.Invalid("meta.k8s.io", "ListOptions", "", [E.forbidden(
                    "sendInitialEvents", "sendInitialEvents is forbidden for watch unless the WatchList "
                    "feature gate is enabled and resourceVersionMatch is set to NotOlderThan and "
                    "allowWatchBookmarks is set to true")]) if opts.resource_version_match != "NotOlderThan" \
                    else E.Invalid("meta.k8s.io", "ListOptions", "", [E.forbidden(
                        "allowWatchBookmarks", "allowWatchBookmarks must be set to true when sendInitialEvents is set")])
        ts = _int_param(request, "timeoutSeconds")
        if ts is not None:
            timeout = float(ts)
        else:
            m = self.config.min_request_timeout
            timeout = m * (1 + random.random())
        events = self.registry.watch(info.namespace, opts, send_initial_events=send_initial)
        resp = web.StreamResponse(status=200)
        resp.content_type = out.content_type if out.media == "json" else N.JSON
        resp.headers["Transfer-Encoding"] = "chunked"
        resp.headers["Cache-Control"] = "no-cache, private"
        server = request.app.get("server")
        await resp.prepare(request)
        # Table watches: the first object event carries the column definitions, later ones
        # omit them (as kube's watchEmbeddedEncoder sets NoHeaders after the first event)
        state = {"rv": 0, "headers": out.conv == "Table"}

        def encode(batch: list[WatchEvent]) -> bytes:
            """A batch of events as the bytes of a watch stream (bookmarks only if asked)."""
            parts = []
            for ev in batch:
                state["rv"] = max(state["rv"], ev.revision)
                if ev.type == "BOOKMARK":
                    if bookmarks:
                        parts.append(self._bookmark(ev.revision, out, initial_end=True))
                    continue
                parts.append(self._event_bytes(ev, out, request, headers=state["headers"]))
                state["headers"] = False
            return b"".join(parts)

        async def pump() -> None:
            """Write events as they come. The initial events and any backlog go out through
            aiohttp's writer, which waits for the client to read; once caught up, the watch
            is pushed (see :func:`push_events`) until the client stops reading."""
            while (batch := await events.next_batch(until_pushable=True)) is not None:
                data = encode(batch)
                if data:
                    await resp.write(data)
                transport = request.transport
                if transport is None or transport.is_closing():
                    return  # the client went away
                if events.pushable and not await push_events(events, transport, encode):
                    return

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # a watcher the storage terminates for not keeping up may be stuck writing to a client
        # that does not read: its connection is closed (the pump task inherits this context)
        closer = WATCH_CLOSER.set(lambda: request.transport.abort() if request.transport is not None else None)
        try:
            pump_task = asyncio.ensure_future(pump())
        finally:
            WATCH_CLOSER.reset(closer)
        closing = server.shutdown_event if server is not None else None
        closing_task = asyncio.ensure_future(closing.wait()) if closing is not None else None
        waiters = {pump_task} | ({closing_task} if closing_task is not None else set())
        try:
            # supervise: timeout, periodic bookmarks, server shutdown
            while not pump_task.done():
                remaining = deadline - loop.time()
                if remaining <= 0 or (closing_task is not None and closing_task.done()):
                    break
                await asyncio.wait(waiters, timeout=min(remaining, self.config.bookmark_interval),
                                   return_when=asyncio.FIRST_COMPLETED)
                if not pump_task.done() and bookmarks and state["rv"] and loop.time() < deadline:
                    await resp.write(self._bookmark(state["rv"], out, initial_end=False))
            if pump_task.done():
                exc = pump_task.exception()
                if isinstance(exc, E.StatusError):
                    await resp.write(orjson.dumps({"type": "ERROR", "object": exc.status()}) + b"\n")
                elif exc is not None and not isinstance(exc, ConnectionError):
                    raise exc
        except ConnectionError:  # the client went away: nothing to report, nothing to log
            return resp
        finally:
            for t in (pump_task, closing_task):
                if t is not None and not t.done():
                    t.cancel()
            if not pump_task.done() or pump_task.cancelled():
                try:
                    await pump_task
                except (asyncio.CancelledError, Exception):
                    pass
            try:
                await events.aclose()
            except Exception:
                pass
        try:
            await resp.write_eof()
        except ConnectionError:
            pass
        return resp

    def _bookmark(self, rv: int, out: N.Output, initial_end: bool) -> bytes:
        md: dict[str, Any] = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        if out.conv:
            obj = {"kind": "PartialObjectMetadata" if out.conv != "Table" else "Table",
                   "apiVersion": f"meta.k8s.io/{out.conv_version}", "metadata": md}
        else:
            obj = {"kind": self.sv.kind, "apiVersion": self.sv.api_version, "metadata": md}
        return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

    def _event_bytes(self, ev: WatchEvent, out: N.Output, request: web.Request, headers: bool = False) -> bytes:
        kv = ev.kv
        if out.conv == "":
            # serialized once per (object revision, version) however many watchers get it
            return b'{"type":"%s","object":%s}\n' % (ev.type.encode(),
                                                      self.codec.versioned_bytes(kv, self.sv.version))
        if out.conv == "Table":
            obj = self._table([kv], str(ev.revision), "", out, request, headers=headers)
        else:
            obj = self._pom(kv, out.conv_version)
        return orjson.dumps({"type": ev.type, "object": obj}) + b"\n"

    # --- writes -------------------------------------------------------------------------
    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise E.RequestEntityTooLarge(limit)
        chunks = []
        total = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            total += len(chunk)
            if total > limit:
                raise E.RequestEntityTooLarge(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    def _dry_run(self, request: web.Request) -> bool:
        vals = request.query.getall("dryRun", [])
        for v in vals:
            if v != "All":
                raise E.BadRequest(f'dryRun: Unsupported value: "{v}": supported values: "All"')
        return bool(vals)

    def _field_validation(self, request: web.Request) -> str:
        fv = _q(request, "fieldValidation", "Warn") or "Warn"
        if fv not in ("Strict", "Warn", "Ignore"):
            raise E.BadRequest(f'fieldValidation: Unsupported value: "{fv}": supported values: '
                               f'"Ignore", "Strict", "Warn"')
        return fv

    def _check_field_manager(self, request: web.Request) -> None:
        fm = _q(request, "fieldManager")
        if len(fm) > 128:
            raise E.Invalid("meta.k8s.io", "PatchOptions", "", [E.too_long("fieldManager", fm, 128)])

    def _check_derived(self, doc: dict, info: RequestInfo) -> None:
        """A patched object: within the depth bound (a JSON patch can nest deeper than its
        body), and kube's ``checkName``: its name and namespace are the URL's."""
        try:
            limits.check_depth(doc, limits.MAX_OBJECT_DEPTH)
        except limits.LimitError as e:
            raise self.registry.invalid(info.name, [E.invalid("patch", None, str(e))]) from None
        md = doc.get("metadata")
        md = md if isinstance(md, dict) else {}
        name, namespace = md.get("name") or "", md.get("namespace") or ""
        if name != info.name:
            raise E.BadRequest(f"the name of the object ({name}) does not match the name on the URL ({info.name})")
        if info.namespace and namespace and namespace != info.namespace:
            raise E.BadRequest(f"the namespace of the object ({namespace}) does not match the namespace on "
                               f"the URL ({info.namespace})")

    def _schema_validator(self) -> SchemaValidator:
        """The kind's served OpenAPI schema as a validator (built on first use): the
        constraints a pydantic field declares (``ge``, ``max_length``, ``pattern``,
        ``Literal``...) refused with kube's field errors, as for a CRD."""
        if self._validator is None:
            from ..openapi import validation_schema
            self._validator = SchemaValidator(*validation_schema(self.sv))
        return self._validator

    def _other_kind_message(self, api_version: str, kind: str) -> str:
        """Go's transformDecodeError for a body of another kind: decoded as that kind when the
        scheme knows it (then its conversion to this kind fails), else "no kind registered"."""
        group = self.res.group
        version = api_version.rsplit("/", 1)[-1]
        head = f'{kind} in version "{version}" cannot be handled as a {self.sv.kind}: '
        known = any(r.kind == kind and f"{group.name}/{v}" == api_version
                    for r in group.resources.values() for v in r.versions)
        if known:
            internal = group.name.split(".", 1)[0]
            return head + f"converting ({version}.{kind}) to ({internal}.{self.sv.kind}): unknown conversion"
        return head + f'no kind "{kind}" is registered for version "{api_version}" in scheme "{group.scheme_name}"'

    def _decode(self, doc: Any, *, fv: str, dups: list[str], info: RequestInfo):
        """Versioned dict -> (hub object, warnings) with GVK checks, field validation and
        per-version defaulting."""
        sv = self.sv
        if not isinstance(doc, dict):
            raise E.BadRequest("the object provided is unrecognized: expected a JSON object")
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        if not api_version and not kind:
            doc = dict(doc, apiVersion=sv.api_version, kind=sv.kind)
        elif not kind:
            raise E.BadRequest("Object 'Kind' is missing in '" + orjson.dumps(doc).decode()[:200] + "'")
        elif not api_version:
            raise E.BadRequest("Object 'apiVersion' is missing in '" + orjson.dumps(doc).decode()[:200] + "'")
        elif kind != sv.kind:
            raise E.BadRequest(self._other_kind_message(str(api_version), str(kind)))
        elif api_version != sv.api_version:
            # kube decodes any served version, then refuses one that is not the URL's
            raise E.BadRequest(f"the API version in the data ({api_version}) does not match the "
                               f"expected API version ({sv.api_version})")
        errs = self._schema_validator().validate(doc) if self.res.schema_validation else None
        if errs:
            md = doc.get("metadata")
            raise self.registry.invalid(md.get("name", "") if isinstance(md, dict) else "", errs)
        obj, warnings = decode_versioned(sv.model, doc, kind=sv.kind, version=sv.version,
                                         field_validation=fv, dups=dups)
        sv.set_defaults(obj)
        hub = sv.to_hub(obj)
        return hub, warnings

    async def _read_object(self, request: web.Request, info: RequestInfo, pretty: bool):
        """What create and update share: negotiation, options, the body decoded to a hub
        object, and the namespace check. Returns (output, dry_run, hub, warnings)."""
        out = N.negotiate(request.headers.get("Accept"), pretty=pretty,
                          allowed_conv=("Table", "PartialObjectMetadata"))
        kind = N.body_kind(request.headers.get("Content-Type"), patch=False)
        dry = self._dry_run(request)
        fv = self._field_validation(request)
        self._check_field_manager(request)
        doc, dups = parse_body(await self._read_body(request), kind, self.sv.kind)
        hub, warnings = self._decode(doc, fv=fv, dups=dups, info=info)
        if self.res.namespaced and hub.metadata.namespace and hub.metadata.namespace != info.namespace:
            raise E.BadRequest("the namespace of the provided object does not match the namespace sent on the request")
        return out, dry, hub, warnings

    async def create(self, request: web.Request, info: RequestInfo, user, pretty: bool) -> web.Response:
        out, dry, hub, warnings = await self._read_object(request, info, pretty)
        if not hub.metadata.name and not hub.metadata.generate_name:
            raise self.registry.invalid("", [E.required("metadata.name", "name or generateName is required")])
        kv, w2 = await self.registry.create(info.namespace, hub, user=user, dry_run=dry, version=self.sv.version)
        if dry:
            return respond(self._dry_doc(kv, out, request), out, 201, warnings + w2)
        return self._object_response(request, kv, pretty, 201, warnings + w2, out)

    def _dry_doc(self, kv: KeyValue, out: N.Output, request: web.Request) -> dict:
        """The object a dry-run write would have stored (never from the caches: the record
        is not stored)."""
        d = self.codec.uncached_versioned_dict(kv, self.sv.version)
        if out.conv == "PartialObjectMetadata":
            return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{out.conv_version}",
                    "metadata": d["metadata"]}
        return d

    async def update(self, request: web.Request, info: RequestInfo, user, pretty: bool) -> web.Response:
        out, dry, hub, warnings = await self._read_object(request, info, pretty)
        if hub.metadata.name and hub.metadata.name != info.name:
            raise E.BadRequest("the name of the object (%s) does not match the name on the URL (%s)"
                               % (hub.metadata.name, info.name))
        hub.metadata.name = info.name

        def make(old, old_kv):
            return hub.model_copy(deep=True)

        kv, created, w2 = await self.registry.update(info.namespace, info.name, make, user=user, dry_run=dry,
                                                     version=self.sv.version, subresource=info.subresource)
        status = 201 if created else 200
        if dry:
            return respond(self._dry_doc(kv, out, request), out, status, warnings + w2)
        return self._object_response(request, kv, pretty, status, warnings + w2, out)

    async def patch(self, request: web.Request, info: RequestInfo, user, pretty: bool) -> web.Response:
        out = N.negotiate(request.headers.get("Accept"), pretty=pretty,
                          allowed_conv=("Table", "PartialObjectMetadata"))
        ptype = N.body_kind(request.headers.get("Content-Type"), patch=True)
        if ptype == "apply":
            return await self.apply(request, info, user, pretty, out)
        dry = self._dry_run(request)
        fv = self._field_validation(request)
        self._check_field_manager(request)
        raw = await self._read_body(request)
        strict = fv != "Ignore"
        if ptype == "json":
            patch, problems = decode_json_patch(raw, strict=strict)
        elif ptype == "merge":
            patch, problems = decode_merge_patch(raw, strict=strict)
        else:
            patch, problems = decode_strategic_merge_patch(raw, strict=strict)
        if problems and fv == "Strict":
            raise self.registry.invalid(info.name, [E.invalid("patch", None, "; ".join(problems))])
        warnings: list[str] = list(problems)

        def make(old, old_kv):
            cur = self.codec.versioned_dict(old_kv, self.sv.version)
            if ptype == "json":
                new = apply_json_patch(cur, patch)
            elif ptype == "merge":
                new = apply_merge_patch(cur, patch)
            else:
                new = strategic_merge_patch(cur, patch or {})
            if not isinstance(new, dict):
                raise self.registry.invalid(info.name, [E.invalid("patch", None,
                                                                  "the patch produced a document that is not an object")])
            self._check_derived(new, info)
            hub, w = self._decode(new, fv=fv, dups=[], info=info)
            warnings[len(problems):] = w
            if hub.metadata.resource_version == str(old_kv.mod_revision):
                # not set by the patch: re-applied to the newest object on a storage conflict
                hub.metadata.resource_version = None
            return hub

        return await self._update_from_current(request, info, user, pretty, out, dry, make, warnings)

    async def apply(self, request: web.Request, info: RequestInfo, user, pretty: bool,
                    out: N.Output) -> web.Response:
        """Server-side apply: create or merge the applied configuration, owning its fields
        under ``fieldManager`` (conflicts -> 409 unless ``force=true``)."""
        dry = self._dry_run(request)
        fv = self._field_validation(request)
        manager = _q(request, "fieldManager")
        if not manager:
            raise E.Invalid("meta.k8s.io", "PatchOptions", "", [E.required(
                "fieldManager", "is required for apply patch")])
        self._check_field_manager(request)
        force = bool(_options_bool(request, "force"))
        applied, _ = parse_body(await self._read_body(request), "apply")
        if not isinstance(applied, dict):
            raise E.BadRequest("the applied configuration must be an object")
        if not applied.get("apiVersion") or not applied.get("kind"):
            raise E.BadRequest("apiVersion and kind must be set in an applied configuration")
        md = applied.get("metadata") or {}
        if not isinstance(md, dict):
            raise E.BadRequest(f"failed to create typed patch object ({info.namespace}/{info.name}; "
                               f"{applied.get('apiVersion')}, Kind={applied.get('kind')}): .metadata: "
                               f"expected map, got {md!r}"[:1000])
        if md.get("name") not in (None, info.name):
            raise E.BadRequest(f'the name of the object ({md.get("name")}) does not match the name on the '
                               f'URL ({info.name})')
        kw = dict(manager=manager, api_version=self.sv.api_version, force=force, group=self.registry.group,
                  resource=self.res.plural, name=info.name, subresource=info.subresource)
        warnings: list[str] = []
        try:
            await self.registry.get(info.namespace, info.name)
        except E.NotFound:
            if info.subresource:
                raise
            doc = fieldmanager.apply(None, applied, **kw)
            doc["metadata"]["name"] = info.name
            hub, warnings = self._decode(doc, fv=fv, dups=[], info=info)
            kv, w2 = await self.registry.create(info.namespace, hub, user=user, dry_run=dry,
                                                version=self.sv.version)
            if dry:
                return respond(self._dry_doc(kv, out, request), out, 201, warnings + w2)
            return self._object_response(request, kv, pretty, 201, warnings + w2, out)

        def make(old, old_kv):
            cur = self.codec.versioned_dict(old_kv, self.sv.version)
            doc = fieldmanager.apply(cur, applied, **kw)
            self._check_derived(doc, info)
            hub, w = self._decode(doc, fv=fv, dups=[], info=info)
            warnings[:] = w
            hub.metadata.resource_version = None  # re-applied to the newest object on a conflict
            return hub

        return await self._update_from_current(request, info, user, pretty, out, dry, make, warnings)

    async def _update_from_current(self, request: web.Request, info: RequestInfo, user, pretty: bool,
                                   out: N.Output, dry: bool, make, warnings: list[str]) -> web.Response:
        """Patch and apply: ``make`` re-derives the object from the newest stored one on every
        attempt, so a storage conflict is retried rather than answered with a 409."""
        kv, _created, w2 = await self.registry.update(info.namespace, info.name, make, user=user, dry_run=dry,
                                                      version=self.sv.version, subresource=info.subresource,
                                                      unconditional=True)
        if dry:
            return respond(self._dry_doc(kv, out, request), out, 200, warnings + w2)
        return self._object_response(request, kv, pretty, 200, warnings + w2, out)

    async def _delete_options(self, request: web.Request) -> DeleteOptions:
        dry = self._dry_run(request)
        opts = DeleteOptions(dry_run=dry)
        raw = await self._read_body(request)
        body: dict = {}
        if raw.strip():
            kind = N.body_kind(request.headers.get("Content-Type"), patch=False)
            body = decode_delete_options(parse_body(raw, kind, "DeleteOptions")[0])
        pre = body.get("preconditions") or {}
        opts.preconditions_uid = pre.get("uid")
        opts.preconditions_rv = pre.get("resourceVersion")
        pp = body.get("propagationPolicy") or _q(request, "propagationPolicy") or None
        if pp is not None and pp not in ("Orphan", "Background", "Foreground"):
            raise E.Invalid("meta.k8s.io", "DeleteOptions", "", [E.not_supported(
                "propagationPolicy", pp, ["Foreground", "Background", "Orphan", "nil"])])
        if body.get("orphanDependents") is not None:
            if pp is not None:
                raise E.Invalid("meta.k8s.io", "DeleteOptions", "", [E.invalid(
                    "propagationPolicy", pp, "orphanDependents and deletionPropagation cannot be both set")])
            pp = "Orphan" if body["orphanDependents"] else "Background"
        opts.propagation_policy = pp
        gps = body.get("gracePeriodSeconds")
        if gps is None:
            gps = _int_param(request, "gracePeriodSeconds")
        if gps is not None:
            try:
                opts.grace_period_seconds = int(gps)
            except (TypeError, ValueError):
                raise E.BadRequest(f'invalid gracePeriodSeconds: "{gps}"') from None
        if body.get("dryRun"):
            opts.dry_run = True
        return opts

    async def delete(self, request: web.Request, info: RequestInfo, user, pretty: bool) -> web.Response:
        out = N.negotiate(request.headers.get("Accept"), pretty=pretty,
                          allowed_conv=("PartialObjectMetadata",))
        opts = await self._delete_options(request)
        kv, deleted = await self.registry.delete(info.namespace, info.name, opts, user=user,
                                                 version=self.sv.version)
        if not deleted:
            return self._object_response(request, kv, pretty, 200, None, out)
        md = self.codec.storage_dict(kv).get("metadata") or {}
        st = dict(STATUS_SUCCESS_KIND)
        st["details"] = {"name": info.name, "group": self.registry.group, "kind": self.res.plural,
                         "uid": md.get("uid", "")}
        return respond(st, out)

    async def delete_collection(self, request: web.Request, info: RequestInfo, user, pretty: bool) -> web.Response:
        out = N.negotiate(request.headers.get("Accept"), pretty=pretty, allowed_conv=())
        opts = await self._delete_options(request)
        lopts = self._list_options(request, info)
        r = await self.registry.list(info.namespace, lopts)
        deleted: list[dict] = []
        for kv in r.items:
            md = self.codec.storage_dict(kv).get("metadata") or {}
            try:
                kv2, _ = await self.registry.delete(md.get("namespace", ""), md["name"], opts, user=user,
                                                    version=self.sv.version)
            except E.NotFound:
                continue
            deleted.append(self.codec.versioned_dict(kv2, self.sv.version))
        doc = {"apiVersion": self.sv.api_version, "kind": self.sv.list_kind,
               "metadata": {"resourceVersion": str(await self.registry.backend.current_revision())},
               "items": deleted}
        return respond(doc, out)
