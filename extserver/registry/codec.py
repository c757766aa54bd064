"""Encoding between stored bytes, the internal (hub) form and versioned wire forms.

Objects are stored as JSON of the resource's storage version with no
``metadata.resourceVersion`` (it is the storage revision, set on read — as kube does).
The read path is built to serialize once: versioned bytes of each stored revision are
cached, and the storage-version fast path splices the resourceVersion into the stored
bytes without parsing them.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson

from ..api import Resource, ServedVersion
from ..machinery.meta import KubeObject
from ..storage.interface import KeyValue

_META = b'"metadata":{'


class LRU:
    """A small bounded mapping (least recently inserted goes first)."""

    __slots__ = ("_d", "_max")

    def __init__(self, maxsize: int):
        self._d: OrderedDict = OrderedDict()
        self._max = maxsize

    def get(self, k):
        return self._d.get(k)

    def put(self, k, v) -> None:
        d = self._d
        d[k] = v
        if len(d) > self._max:
            d.popitem(last=False)


class Codec:
    """Per-resource codec with caches keyed by (key, mod_revision)."""

    def __init__(self, resource: Resource, cache_size: int = 20_000):
        self.resource = resource
        self._bytes = LRU(cache_size)  # (key, rev, version) -> bytes
        self._dicts = LRU(cache_size)  # (key, rev) -> storage dict (without resourceVersion)

    # --- writing ------------------------------------------------------------------------
    def encode_for_storage(self, hub: KubeObject) -> bytes:
        sv = self.resource.storage
        obj = sv.from_hub(hub)
        d = obj.to_wire()
        md = d.setdefault("metadata", {})
        md.pop("resourceVersion", None)
        md.pop("selfLink", None)
        # apiVersion, kind, metadata first: the bytes fast path relies on it
        out = {"apiVersion": d.pop("apiVersion"), "kind": d.pop("kind"), "metadata": d.pop("metadata")}
        out.update(d)
        return orjson.dumps(out)

    # --- reading ------------------------------------------------------------------------
    def storage_dict(self, kv: KeyValue) -> dict:
        """The stored object as a dict (shared: do not mutate)."""
        ck = (kv.key, kv.mod_revision)
        d = self._dicts.get(ck)
        if d is None:
            d = orjson.loads(kv.value)
            self._dicts.put(ck, d)
        return d

    def metadata(self, kv: KeyValue) -> dict:
        md = dict(self.storage_dict(kv).get("metadata") or {})
        md["resourceVersion"] = str(kv.mod_revision)
        return md

    def hub(self, kv: KeyValue) -> KubeObject:
        sv = self.resource.storage
        obj = sv.model.model_validate(self.storage_dict(kv))
        obj.metadata.resource_version = str(kv.mod_revision)
        return sv.to_hub(obj)

    def uncached_versioned_dict(self, kv: KeyValue, version: str) -> dict:
        """For records that were not stored (dry run): decode ``kv.value`` itself; a zero
        ``mod_revision`` (dry-run create) gets no resourceVersion."""
        sv = self.resource.storage
        obj = sv.model.model_validate(orjson.loads(kv.value))
        obj.metadata.resource_version = str(kv.mod_revision) if kv.mod_revision else None
        return self.hub_to_dict(sv.to_hub(obj), self.resource.versions[version])

    def versioned_dict(self, kv: KeyValue, version: str) -> dict:
        return orjson.loads(self.versioned_bytes(kv, version))

    def versioned_bytes(self, kv: KeyValue, version: str) -> bytes:
        ck = (kv.key, kv.mod_revision, version)
        b = self._bytes.get(ck)
        if b is not None:
            return b
        if version == self.resource.storage_version:
            b = splice_resource_version(kv.value, kv.mod_revision)
            if b is None:
                d = dict(self.storage_dict(kv))
                d["metadata"] = dict(d.get("metadata") or {}, resourceVersion=str(kv.mod_revision))
                b = orjson.dumps(d)
        else:
            b = self.hub_to_bytes(self.hub(kv), self.resource.versions[version])
        self._bytes.put(ck, b)
        return b

    @staticmethod
    def hub_to_dict(hub: KubeObject, sv: ServedVersion) -> dict:
        d = sv.from_hub(hub).to_wire()
        out = {"apiVersion": d.pop("apiVersion"), "kind": d.pop("kind"), "metadata": d.pop("metadata", {})}
        out.update(d)
        return out

    def hub_to_bytes(self, hub: KubeObject, sv: ServedVersion) -> bytes:
        return orjson.dumps(self.hub_to_dict(hub, sv))


def splice_resource_version(value: bytes, rev: int) -> bytes | None:
    """Insert ``"resourceVersion":"<rev>"`` into the top-level metadata of stored JSON bytes
    written by :meth:`Codec.encode_for_storage` (apiVersion, kind, metadata first)."""
    i = value.find(_META)
    if i < 0 or i > 300:
        return None
    j = i + len(_META)
    rv = b'"resourceVersion":"%d"' % rev
    if value[j:j + 1] == b"}":
        return value[:j] + rv + value[j:]
    return value[:j] + rv + b"," + value[j:]


def loads(data: bytes) -> Any:
    return orjson.loads(data)
