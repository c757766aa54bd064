"""The generic registry Store (as ``k8s.io/apiserver/pkg/registry/generic/registry.Store``):
turns API verbs into storage operations, running the strategy hooks and admission.

It speaks internal (hub) objects and :class:`KeyValue` records; the handlers decide the
wire form (see :mod:`extserver.registry.codec`)."""
from __future__ import annotations

import asyncio
import base64
import posixpath
import secrets
import string
import uuid
from dataclasses import dataclass
from typing import Awaitable, Callable

import orjson

from ..api import AdmissionAttributes, Resource
from ..machinery import errors as E
from ..machinery import jsonscan
from ..machinery.meta import KubeObject, now_rfc3339
from ..machinery.selectors import FieldSelector, LabelSelector
from ..machinery.validation import validate_object_meta, validate_object_meta_update
from ..storage.interface import (Backend, Compacted, FutureRevision, KeyExists, KeyNotFound,
                                 KeyValue, RevisionMismatch)
from .codec import Codec
from .resource_version import parse_resource_version
from .watch import RegistryWatch, WatchEvent  # noqa: F401 - WatchEvent is part of this module's API

_NAME_CHARS = string.ascii_lowercase + string.digits
# kube's SimpleNameGenerator: 5 random chars from an alphabet without vowels
_GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MAX_GENERATE_NAME_BASE = 63 - 5
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


def generate_name(base: str) -> str:
    if len(base) > MAX_GENERATE_NAME_BASE:
        base = base[:MAX_GENERATE_NAME_BASE]
    return base + "".join(secrets.choice(_GEN_ALPHABET) for _ in range(5))


@dataclass(slots=True)
class ListOptions:
    label_selector: LabelSelector | None = None
    field_selector: FieldSelector | None = None
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""


@dataclass(slots=True)
class ListResult:
    items: list[KeyValue]
    revision: int
    continue_token: str = ""
    remaining: int | None = None


@dataclass(slots=True)
class DeleteOptions:
    preconditions_uid: str | None = None
    preconditions_rv: str | None = None
    propagation_policy: str | None = None
    grace_period_seconds: int | None = None
    dry_run: bool = False


class Registry:
    """One resource's store on one backend."""

    def __init__(self, resource: Resource, backend: Backend, *, admission=None, server=None):
        self.resource = resource
        self.backend = backend
        self.codec = Codec(resource)
        self.strategy = resource.strategy
        self.admission = admission  # callable(attrs, phase) or None
        self.server = server
        self.group = resource.group.name
        self.plural = resource.plural
        self._base = f"/{self.group}/{self.plural}/"
        # None: only the metadata fields (kube's message differs when a kind declares more)
        self._supported_fields = ({"metadata.name", "metadata.namespace", *self.strategy.selectable_field_names}
                                  if self.strategy.selectable_field_names else None)

    # --- keys ---------------------------------------------------------------------------
    def key(self, namespace: str, name: str) -> str:
        if self.resource.namespaced:
            return f"{self._base}{namespace}/{name}"
        return self._base + name

    def prefix(self, namespace: str) -> str:
        if self.resource.namespaced and namespace:
            return f"{self._base}{namespace}/"
        return self._base

    # --- errors -------------------------------------------------------------------------
    def not_found(self, name: str) -> E.NotFound:
        return E.NotFound(self.group, self.plural, name)

    def conflict(self, name: str, detail: str = E.Conflict.OPTIMISTIC_LOCK) -> E.Conflict:
        return E.Conflict(self.group, self.plural, name, detail)

    def invalid(self, name: str, errs) -> E.Invalid:
        return E.Invalid(self.group, self.resource.kind, name, errs)

    # --- reads --------------------------------------------------------------------------
    async def get(self, namespace: str, name: str, resource_version: str = "") -> KeyValue:
        rev = 0
        if resource_version not in ("", "0"):
            rev = 0  # NotOlderThan semantics for get: the newest satisfies it
            await self._check_not_future(parse_resource_version(resource_version))
        kv, _ = await self.backend.get(self.key(namespace, name), rev)
        if kv is None:
            raise self.not_found(name)
        return kv

    async def _check_not_future(self, rv: int) -> None:
        cur = await self.backend.current_revision()
        if rv > cur:
            # kube waits up to 3 s for the cache to catch up, then answers 504
            for _ in range(30):
                await asyncio.sleep(0.1)
                cur = await self.backend.current_revision()
                if rv <= cur:
                    return
            raise E.ResourceVersionTooLarge(rv, cur)

    def matches(self, kv: KeyValue, opts: ListOptions) -> bool:
        ls, fs = opts.label_selector, opts.field_selector
        if ls is not None and not ls.empty:
            md = self.codec.storage_dict(kv).get("metadata") or {}
            if not ls.matches(md.get("labels") or {}):
                return False
        if fs is not None and not fs.empty:
            if not fs.matches(self.fields(kv)):
                return False
        return True

    def fields(self, kv: KeyValue) -> dict[str, str]:
        md = self.codec.storage_dict(kv).get("metadata") or {}
        f = {"metadata.name": md.get("name", "")}
        if self.resource.namespaced:
            f["metadata.namespace"] = md.get("namespace", "")
        if self.strategy.selectable_field_names:
            f.update(self.strategy.selectable_fields(self.codec.hub(kv)))
        return f

    def check_field_selector(self, fs: FieldSelector | None) -> None:
        if fs is not None and not fs.empty:
            try:
                fs.check_supported(self._supported_fields)
            except ValueError as e:
                raise E.BadRequest(f'{e}') from None

    async def list(self, namespace: str, opts: ListOptions) -> ListResult:
        """List with selectors, paging and resourceVersion semantics (SPEC §5 list)."""
        self.check_field_selector(opts.field_selector)
        prefix = self.prefix(namespace)
        rev = 0
        start = prefix
        if opts.continue_token:
            rev, start_rel = decode_continue(opts.continue_token)
            start = prefix + start_rel
        elif opts.resource_version not in ("", "0"):
            want = parse_resource_version(opts.resource_version)
            if opts.resource_version_match == "Exact":
                rev = want
            else:
                await self._check_not_future(want)
        elif opts.resource_version_match not in ("", "NotOlderThan") and opts.resource_version == "":
            raise E.Invalid("meta.k8s.io", "ListOptions", "", [E.forbidden(
                "resourceVersionMatch", "resourceVersionMatch is forbidden unless resourceVersion is provided")])
        cached = getattr(self.backend, "range_not_older_than", None)
        if cached is not None and not opts.continue_token and (
                opts.resource_version == "0" or
                (opts.resource_version and opts.resource_version_match != "Exact" and opts.limit <= 0)):
            # served from the watch cache (kube ignores limit for resourceVersion=0 there)
            try:
                r = await cached(prefix, 0 if opts.resource_version == "0" else parse_resource_version(opts.resource_version))
            except FutureRevision as e:
                raise E.ResourceVersionTooLarge(e.requested, e.current) from None
            return ListResult([kv for kv in r.kvs if self.matches(kv, opts)], r.revision)
        limit = opts.limit if opts.limit > 0 else 0
        items: list[KeyValue] = []
        selecting = (opts.label_selector is not None and not opts.label_selector.empty) or \
                    (opts.field_selector is not None and not opts.field_selector.empty)
        try:
            while True:
                want_n = 0 if limit == 0 else (limit - len(items)) + (0 if not selecting else 0)
                r = await self.backend.range(prefix, start_key=start, limit=want_n, revision=rev)
                rev = r.revision
                for kv in r.kvs:
                    if not selecting or self.matches(kv, opts):
                        items.append(kv)
                if limit == 0 or not r.more:
                    return ListResult(items, rev)
                last = r.kvs[-1].key if r.kvs else start
                if len(items) >= limit:
                    remaining = None
                    if not selecting and r.count >= 0:
                        remaining = max(r.count - len(r.kvs), 0) or None
                    return ListResult(items[:limit], rev, encode_continue(rev, last[len(prefix):] + "\x00"),
                                      remaining)
                start = last + "\x00"
        except Compacted as e:
            if opts.continue_token:
                raise E.Gone(E.EXPIRED_CONTINUE) from None
            raise E.too_old_resource_version(e.requested, e.compacted) from None
        except FutureRevision as e:
            raise E.ResourceVersionTooLarge(e.requested, e.current) from None

    async def list_hub(self, namespace: str = "") -> list[KubeObject]:
        """All objects as hub objects (for admission plugins and providers), as a Go
        plugin's informer lister has them: from the watch cache where there is one (no
        storage round trip per admitted request) — once it holds every write this server
        made to the resource — else from the storage."""
        prefix = self.prefix(namespace)
        lister = getattr(self.backend, "range_with_own_writes", None)
        r = await (lister(prefix) if lister is not None else self.backend.range(prefix))
        return [self.codec.hub(kv) for kv in r.kvs]

    # --- writes -------------------------------------------------------------------------
    async def _admit(self, op: str, obj, old, namespace: str, name: str, user, dry_run: bool,
                     version: str, subresource: str = "") -> None:
        if self.admission is None:
            return
        attrs = AdmissionAttributes(operation=op, group=self.group, version=version, resource=self.plural,
                                    subresource=subresource, kind=self.resource.kind, namespace=namespace,
                                    name=name, object=obj, old_object=old, user=user, dry_run=dry_run,
                                    server=self.server)
        await self.admission(attrs)

    async def create(self, namespace: str, obj: KubeObject, *, user=None, dry_run: bool = False,
                     version: str = "") -> tuple[KeyValue, list[str]]:
        """Create ``obj`` (hub form). Returns the stored record (a synthetic one for dry-run)
        and warnings."""
        md = obj.metadata
        if self.resource.namespaced:
            md.namespace = namespace
        else:
            md.namespace = None
        if not md.name and md.generate_name:
            md.name = generate_name(md.generate_name)
        # what the server owns
        md.uid = str(uuid.uuid4())
        md.creation_timestamp = now_rfc3339()
        md.resource_version = None
        md.generation = 1
        md.deletion_timestamp = None
        md.deletion_grace_period_seconds = None
        md.self_link = None
        if self.resource.has_status:
            obj.status = type(obj.status)()  # status is written through the status subresource
        self.strategy.prepare_for_create(obj)
        await self._admit("CREATE", obj, None, namespace, md.name or "", user, dry_run, version)
        errs = validate_object_meta(obj.metadata.to_wire(), namespaced=self.resource.namespaced)
        errs += self.strategy.validate(obj)
        if errs:
            raise self.invalid(md.name or "", errs)
        self.strategy.canonicalize(obj)
        warnings = self.strategy.warnings_on_create(obj)
        data = self.codec.encode_for_storage(obj)
        key = self.key(namespace, md.name)
        if dry_run:
            kv, _ = await self.backend.get(key)
            if kv is not None:
                raise E.AlreadyExists(self.group, self.plural, md.name)
            return KeyValue(key, data, 0, 0), warnings
        try:
            kv = await self.backend.create(key, data)
        except KeyExists:
            raise E.AlreadyExists(self.group, self.plural, md.name) from None
        return kv, warnings

    async def update(self, namespace: str, name: str,
                     make: Callable[[KubeObject, KeyValue], Awaitable[KubeObject] | KubeObject],
                     *, user=None, dry_run: bool = False, version: str = "", subresource: str = "",
                     force_allow_create: bool = False, unconditional: bool = False,
                     ) -> tuple[KeyValue, bool, list[str]]:
        """GuaranteedUpdate: ``make(old_hub, old_kv)`` returns the new hub object (it may carry
        ``metadata.resourceVersion`` as a precondition). Retries on a storage conflict when the
        new object carries no resourceVersion; that is refused unless the strategy allows
        unconditional updates or the caller (patch) re-derives the object on every attempt
        (``unconditional``). Returns (record, created, warnings)."""
        key = self.key(namespace, name)
        for _attempt in range(64):
            kv, _ = await self.backend.get(key)
            if kv is None:
                if (self.strategy.allow_create_on_update or force_allow_create) and not subresource:
                    new = make(None, None)
                    if asyncio.iscoroutine(new):
                        new = await new
                    if new.metadata.name and new.metadata.name != name:
                        raise E.BadRequest("the name of the object does not match the name on the URL")
                    new.metadata.name = name
                    kv2, warnings = await self.create(namespace, new, user=user, dry_run=dry_run,
                                                      version=version)
                    return kv2, True, warnings
                raise self.not_found(name)
            old = self.codec.hub(kv)
            new = make(old.model_copy(deep=True), kv)
            if asyncio.iscoroutine(new):
                new = await new
            rv = new.metadata.resource_version
            if rv and parse_resource_version(rv) == 0:
                rv = None  # "0" asks for no precondition, as in kube
            if not rv:
                if not (self.strategy.allow_unconditional_update or unconditional):
                    # generic Store.Update's own error: on the *resource* (GroupKind{Kind: plural}),
                    # the uint64 resourceVersion printed as Go's %#v does
                    raise E.Invalid(self.group, self.plural, name, [E.invalid(
                        "metadata.resourceVersion", E.GoValue("0x0"), "must be specified for an update")])
            elif rv != str(kv.mod_revision):
                raise self.conflict(name)
            new.metadata.resource_version = str(kv.mod_revision)
            if new.metadata.name != name:
                raise E.BadRequest("the name of the object does not match the name on the URL") \
                    if new.metadata.name else self.invalid(name, [E.required("metadata.name", "name or generateName is required")])
            self._keep_server_fields(new, old)
            if subresource == "status":
                new = self._status_only(new, old)
                self.strategy.prepare_for_status_update(new, old)
            else:
                if self.resource.has_status:
                    new.status = old.status
                self.strategy.prepare_for_update(new, old)
                if _spec_of(new) != _spec_of(old):
                    new.metadata.generation = (old.metadata.generation or 0) + 1
            await self._admit("UPDATE", new, old, namespace, name, user, dry_run, version, subresource)
            errs = validate_object_meta(new.metadata.to_wire(), namespaced=self.resource.namespaced)
            errs += validate_object_meta_update(new.metadata.to_wire(), old.metadata.to_wire())
            if subresource == "status":
                errs += self.strategy.validate_status_update(new, old)
            else:
                errs += self.strategy.validate_update(new, old)
            if errs:
                raise self.invalid(name, errs)
            self.strategy.canonicalize(new)
            warnings = [] if subresource else self.strategy.warnings_on_update(new, old)
            data = self.codec.encode_for_storage(new)
            finalized = bool(new.metadata.deletion_timestamp and not new.metadata.finalizers)
            if not finalized and data == kv.value:  # a no-op update writes nothing (as kube)
                return kv, False, warnings
            if dry_run:
                return KeyValue(key, data, kv.create_revision, kv.mod_revision), False, warnings
            try:
                if finalized:  # an object being deleted whose last finalizer went away goes now
                    _prev, drev = await self.backend.delete(key, kv.mod_revision)
                    return KeyValue(kv.key, data, kv.create_revision, drev), False, warnings
                return await self.backend.update(key, data, kv.mod_revision), False, warnings
            except RevisionMismatch:
                if rv:
                    raise self.conflict(name) from None
                continue
            except KeyNotFound:
                raise self.not_found(name) from None
        raise self.conflict(name, "too many retries")

    @staticmethod
    def _keep_server_fields(new: KubeObject, old: KubeObject) -> None:
        n, o = new.metadata, old.metadata
        n.uid = o.uid
        n.creation_timestamp = o.creation_timestamp
        n.generation = o.generation
        n.deletion_grace_period_seconds = o.deletion_grace_period_seconds
        n.namespace = o.namespace
        n.self_link = None
        if o.deletion_timestamp:
            n.deletion_timestamp = o.deletion_timestamp
        else:
            n.deletion_timestamp = None
        if not n.generate_name:
            n.generate_name = o.generate_name

    def _status_only(self, new: KubeObject, old: KubeObject) -> KubeObject:
        """A status update changes status only (and may not touch spec or metadata)."""
        out = old.model_copy(deep=True)
        if self.resource.has_status:
            out.status = new.status
        out.metadata.resource_version = new.metadata.resource_version
        return out

    async def delete(self, namespace: str, name: str, opts: DeleteOptions, *, user=None,
                     version: str = "") -> tuple[KeyValue, bool]:
        """Delete; returns (record, deleted_now). With finalizers the object only gets a
        deletionTimestamp and stays until the last finalizer is removed."""
        key = self.key(namespace, name)
        for _attempt in range(64):
            kv, _ = await self.backend.get(key)
            if kv is None:
                raise self.not_found(name)
            obj = self.codec.hub(kv)
            md = obj.metadata
            # rest.BeforeDelete's early checks: a Conflict on the *kind* (GroupResource{Resource: Kind})
            if opts.preconditions_uid is not None and opts.preconditions_uid != md.uid:
                raise E.Conflict(self.group, self.resource.kind, name, (
                    f"the UID in the precondition ({opts.preconditions_uid}) does not match the UID in record "
                    f"({md.uid}). The object might have been deleted and then recreated"))
            if opts.preconditions_rv is not None and opts.preconditions_rv != str(kv.mod_revision):
                raise E.Conflict(self.group, self.resource.kind, name, (
                    f"the ResourceVersion in the precondition ({opts.preconditions_rv}) does not match the "
                    f"ResourceVersion in record ({kv.mod_revision}). The object might have been modified"))
            await self._admit("DELETE", None, obj, namespace, name, user, opts.dry_run, version)
            finalizers = list(md.finalizers or [])
            policy = opts.propagation_policy
            if policy == "Foreground" and FOREGROUND not in finalizers:
                finalizers.append(FOREGROUND)
                if ORPHAN in finalizers:
                    finalizers.remove(ORPHAN)
            elif policy == "Orphan" and ORPHAN not in finalizers:
                finalizers.append(ORPHAN)
                if FOREGROUND in finalizers:
                    finalizers.remove(FOREGROUND)
            if finalizers:
                if md.deletion_timestamp and finalizers == (md.finalizers or []):
                    return kv, False  # already being deleted
                md.finalizers = finalizers
                if not md.deletion_timestamp:
                    md.deletion_timestamp = now_rfc3339()
                    md.deletion_grace_period_seconds = 0
                data = self.codec.encode_for_storage(obj)
                if opts.dry_run:
                    return KeyValue(key, data, kv.create_revision, kv.mod_revision), False
                try:
                    kv2 = await self.backend.update(key, data, kv.mod_revision)
                except RevisionMismatch:
                    continue
                return kv2, False
            if opts.dry_run:
                return kv, True
            try:
                prev, drev = await self.backend.delete(key, kv.mod_revision)
            except RevisionMismatch:
                continue
            except KeyNotFound:
                raise self.not_found(name) from None
            return prev, True
        raise self.conflict(name, "too many retries")

    # --- watch --------------------------------------------------------------------------
    def watch(self, namespace: str, opts: ListOptions, *, send_initial_events: bool | None = None,
              ) -> RegistryWatch:
        """Events for the collection: ADDED/MODIFIED/DELETED with selector transitions, and
        a BOOKMARK(kv=None) after initial events when ``send_initial_events`` (see
        :mod:`.watch`)."""
        return RegistryWatch(self, namespace, opts, send_initial_events)


def _spec_of(obj: KubeObject) -> bytes:
    d = obj.model_dump(by_alias=True, exclude_none=True, exclude={"metadata", "status", "api_version", "kind"})
    return orjson.dumps(d, option=orjson.OPT_SORT_KEYS)


def encode_continue(rev: int, start: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rev, "start": start})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_TOKEN_FIELDS = {"v": ("string", str), "rv": ("int64", int), "start": ("string", str)}


def _token_error(detail: str) -> E.BadRequest:
    # k8s.io/apiserver/pkg/storage.DecodeContinue's errors, as the etcd3 store answers them
    return E.BadRequest(f"invalid continue token: continue key is not valid: {detail}")


def decode_continue(token: str) -> tuple[int, str]:
    """(revision, start key relative to the resource's prefix) of a continue token, or
    kube's 400 for each way DecodeContinue refuses one (base64url without padding, then the
    JSON ``{"v", "rv", "start"}``, then the version, revision, start key and traversal)."""
    for i, c in enumerate(token):
        if c not in _B64URL:
            raise _token_error(f"illegal base64 data at input byte {i}")
    if len(token) % 4 == 1:
        raise _token_error(f"illegal base64 data at input byte {len(token) - 1}")
    data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    syntax = jsonscan.go_json_syntax_error(data)
    if syntax is not None:
        raise _token_error(syntax)
    # Go's decoder takes invalid UTF-8 in strings as U+FFFD; the syntax is already checked
    d = orjson.loads(data.decode("utf-8", "replace")) if data.strip() else None
    if not isinstance(d, dict):
        shown = {list: "array", str: "string", bool: "bool", int: "number", float: "number"}.get(type(d), "null")
        if d is not None:
            raise _token_error(f"json: cannot unmarshal {shown} into Go value of type storage.continueToken")
        d = {}
    for name, (go_type, py_type) in _TOKEN_FIELDS.items():
        v = d.get(name)
        if v is not None and (not isinstance(v, py_type) or isinstance(v, bool)):
            shown = {list: "array", dict: "object", str: "string", bool: "bool"}.get(
                type(v), f"number {orjson.dumps(v).decode()}")
            raise _token_error(f"json: cannot unmarshal {shown} into Go struct field continueToken.{name} "
                               f"of type {go_type}")
    version, rev, start = d.get("v") or "", d.get("rv") or 0, d.get("start") or ""
    if version != "meta.k8s.io/v1":
        raise _token_error(f"server does not recognize this encoded version {version}")
    if rev <= 0:  # Go refuses 0; a negative one would reach the store, refused here too
        raise _token_error("incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    if not start:
        raise _token_error("encoded start key empty (version meta.k8s.io/v1)")
    key = start if start.startswith("/") else "/" + start
    if posixpath.normpath(key) != key or "//" in key or key.endswith("/") and key != "/":
        raise _token_error(start)  # path.Clean would change it: a traversal attempt
    return rev, key[1:]
