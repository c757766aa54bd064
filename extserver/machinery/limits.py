"""Bounds applied once, where a request body is decoded, before anything walks it.

kube's decoders refuse JSON nested deeper than 10,000 levels (Go's ``encoding/json``:
``exceeded max depth``) and YAML nested deeper than 10,000 or with excessive aliasing
(``gopkg.in/yaml.v2``, the CVE-2019-11253 fix). Here the depth bound is lower,
:data:`MAX_DEPTH` = 200, because what runs after decoding cannot go deeper: orjson (which
encodes every stored object and response) refuses more than 254 levels, and the patch,
merge and managed-fields walks recurse in Python (limit 1,000 frames, a few per level).
200 leaves room for what wraps an object on the way out (list items +2, Table rows +3,
``managedFields[].fieldsV1`` +4). Checking at the edge means no later walk needs its own
guard; the checks themselves are iterative.

YAML is read with libyaml (``CSafeLoader``): its scanner refuses what Go's (a port of it)
refuses, e.g. the escape ``"\\ud800"``. Before the document is built, its event stream is
scanned once to measure depth and alias expansion without expanding anything; the
document is then copied into plain JSON values as ``sigs.k8s.io/yaml`` converts YAML to
JSON (non-string keys become strings, timestamps stay strings, integers beyond 64 bits
become floats).
"""
from __future__ import annotations

import datetime as _dt
import re
from typing import Any

import yaml

MAX_DEPTH = 200
# Objects the server derives (patch and apply results) may nest a little deeper: the
# managedFields entry tracking a field sits 5 levels below the object's top, so an object
# written at MAX_DEPTH stays patchable and appliable.
MAX_OBJECT_DEPTH = MAX_DEPTH + 8
# Nodes that alias expansion may add beyond those written in the document: with the
# 3 MiB body limit a document without aliases has fewer than 1.5 million nodes.
MAX_ALIAS_EXPANSION = 1_000_000

_CONTAINERS = (dict, list)
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_MIN, _UINT_MAX = -(1 << 63), (1 << 64) - 1


class LimitError(ValueError):
    """A body beyond a bound; ``str(e)`` is the decoder's message (Go's words)."""


def check_depth(doc: Any, limit: int = MAX_DEPTH) -> None:
    """Raise :class:`LimitError` when ``doc`` nests more than ``limit`` containers."""
    if type(doc) not in _CONTAINERS:
        return
    stack = [(doc, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        v, d = pop()
        if d > limit:
            raise LimitError(("invalid character '{' exceeded max depth" if type(v) is dict
                              else "invalid character '[' exceeded max depth"))
        for c in (v.values() if type(v) is dict else v):
            if type(c) is dict or type(c) is list:
                push((c, d + 1))


def scrub_surrogates(doc: Any) -> Any:
    """Replace lone UTF-16 surrogates (from ``"\\ud800"`` escapes) with U+FFFD, as Go's
    JSON decoder does; iterative, in place for containers."""
    if isinstance(doc, str):
        return _SURROGATE.sub("\ufffd", doc)
    if not isinstance(doc, _CONTAINERS):
        return doc
    stack = [doc]
    while stack:
        v = stack.pop()
        items = list(v.items()) if isinstance(v, dict) else list(enumerate(v))
        for k, c in items:
            if isinstance(c, str) and _SURROGATE.search(c):
                v[k] = _SURROGATE.sub("\ufffd", c)
            elif isinstance(c, _CONTAINERS):
                stack.append(c)
            if type(k) is str and _SURROGATE.search(k):
                v[_SURROGATE.sub("\ufffd", k)] = v.pop(k)
    return doc


# --- YAML ----------------------------------------------------------------------------

class _Loader(yaml.CSafeLoader):
    """libyaml's parser; timestamps stay strings (yaml.v2 into ``interface{}``)."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.CSafeLoader.yaml_implicit_resolvers.items()}


def _allowed_alias_ratio(decodes: int) -> float:
    """yaml.v2's ``allowedAliasRatio``: 99% of decodes up to 400,000, falling linearly to
    10% at 4,000,000."""
    if decodes <= 400_000:
        return 0.99
    if decodes >= 4_000_000:
        return 0.10
    return 0.99 - 0.89 * (decodes - 400_000) / 3_600_000


class _Resolver(yaml.resolver.Resolver):
    """YAML 1.1 implicit typing, as yaml.v2's, but timestamps stay strings."""


_Resolver.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers
_RESOLVER = _Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NO_KEY = object()
_MERGE = object()


def _scalar_value(ev: yaml.ScalarEvent) -> Any:
    """A scalar event's value as PyYAML's SafeLoader constructs it."""
    tag = ev.tag
    if tag is None or tag == "!":
        if not ev.implicit[0]:
            return ev.value  # quoted: a string
        tag = _RESOLVER.resolve(yaml.ScalarNode, ev.value, ev.implicit)
    if tag == _STR_TAG:
        return ev.value
    if tag == _MERGE_TAG:
        return _MERGE
    construct = yaml.constructor.SafeConstructor.yaml_constructors.get(tag)
    if construct is None:
        raise yaml.constructor.ConstructorError(None, None, f"could not determine a constructor for the tag {tag!r}",
                                                ev.start_mark)
    return _scalar(construct(_CONSTRUCTOR, yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark,
                                                           style=ev.style)))


class _Frame:
    """An open mapping or sequence while the event stream is read."""

    __slots__ = ("value", "key", "anchor", "decodes", "levels", "merges", "start")

    def __init__(self, value: Any, anchor: str | None, start) -> None:
        self.value = value
        self.key: Any = _NO_KEY
        self.anchor = anchor
        self.decodes = 1
        self.levels = 0
        self.merges: list = []
        self.start = start


def _merge_keys(f: _Frame) -> None:
    """``<<`` merge keys (PyYAML's flatten_mapping): explicit keys win, then earlier sources."""
    merged: dict = {}
    for src in reversed(f.merges):
        for m in (reversed(src) if type(src) is list else (src,)):
            if type(m) is not dict:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", f.start,
                    "expected a mapping or list of mappings for merging", f.start)
            merged.update(m)
    explicit = dict(f.value)
    f.value.clear()
    f.value.update(merged)
    f.value.update(explicit)


def _build(data: bytes) -> tuple[Any, bool]:
    """Build the first YAML document from libyaml's event stream, without recursion, while
    measuring it: depth with aliases expanded, and yaml.v2's decode and alias counts
    (computed per anchor rather than by expanding). Returns (document, has aliases); an
    alias is still a shared reference here."""
    anchors: dict[str, tuple[Any, int, int]] = {}  # anchor -> (value, decodes when expanded, levels)
    stack: list[_Frame] = []
    root: list = []
    nodes = decodes = aliases = 0

    def put(value: Any, size: int, levels: int) -> None:
        if not stack:
            root.append(value)
            return
        f = stack[-1]
        f.decodes += size
        if levels > f.levels:
            f.levels = levels
        if type(f.value) is list:
            f.value.append(value)
        elif f.key is _NO_KEY:
            if value is not _MERGE and type(value) in (dict, list):
                raise LimitError(f"yaml: invalid map key: {value!r}"[:200])
            f.key = value if value is _MERGE else _key(value)
        else:
            if f.key is _MERGE:
                f.merges.append(value)
            else:
                f.value[f.key] = value
            f.key = _NO_KEY

    for ev in yaml.parse(data, Loader=_Loader):
        t = type(ev)
        if t is yaml.ScalarEvent:
            nodes += 1
            decodes += 1
            value = _scalar_value(ev)
            if ev.anchor:
                anchors[ev.anchor] = (value, 1, 0)
            put(value, 1, 0)
        elif t is yaml.MappingStartEvent or t is yaml.SequenceStartEvent:
            nodes += 1
            decodes += 1
            stack.append(_Frame({} if t is yaml.MappingStartEvent else [], ev.anchor, ev.start_mark))
            if len(stack) > MAX_DEPTH:
                raise LimitError(f"yaml: exceeded max depth of {MAX_DEPTH}")
        elif t is yaml.MappingEndEvent or t is yaml.SequenceEndEvent:
            f = stack.pop()
            if f.merges:
                _merge_keys(f)
            if f.anchor:
                anchors[f.anchor] = (f.value, f.decodes, f.levels + 1)
            put(f.value, f.decodes, f.levels + 1)
        elif t is yaml.AliasEvent:
            target = anchors.get(ev.anchor)
            if target is None:
                raise yaml.composer.ComposerError(None, None, f"found undefined alias {ev.anchor!r}", ev.start_mark)
            value, size, levels = target
            decodes += 1 + size
            aliases += size
            if len(stack) + levels > MAX_DEPTH:
                raise LimitError(f"yaml: exceeded max depth of {MAX_DEPTH}")
            put(value, 1 + size, levels)
        elif t is yaml.DocumentEndEvent:
            break  # the first document only, as yaml.v2's Unmarshal
        else:
            continue
        if aliases > 100 and decodes > 1000 and aliases / decodes > _allowed_alias_ratio(decodes):
            raise LimitError("yaml: document contains excessive aliasing")
        if decodes - nodes > MAX_ALIAS_EXPANSION:
            raise LimitError("yaml: document contains excessive aliasing")
    return (root[0] if root else None), decodes > nodes


def _go_float_key(f: float) -> str:
    if f != f:
        return ".nan"
    if f in (float("inf"), float("-inf")):
        return ".inf" if f > 0 else "-.inf"
    if f.is_integer() and abs(f) < 1e21:
        return str(int(f))
    return repr(f)


def _key(k: Any) -> str:
    """A YAML map key as ``sigs.k8s.io/yaml`` turns it into a JSON member name."""
    if type(k) is str:
        return k
    if type(k) is bool:
        return "true" if k else "false"
    if type(k) is int:
        return str(k)
    if type(k) is float:
        return _go_float_key(k)
    raise LimitError(f"yaml: invalid map key: {k!r}"[:200])


def _scalar(v: Any) -> Any:
    t = type(v)
    if t is int:
        return v if _INT_MIN <= v <= _UINT_MAX else float(v)
    if t is bytes:  # !!binary: yaml.v2 gives the decoded bytes as a string
        return v.decode("utf-8", "replace")
    if t in (_dt.datetime, _dt.date):  # an explicit !!timestamp
        return v.isoformat().replace("+00:00", "Z")
    return v


def _plain(root: Any) -> Any:
    """Copy a YAML document into plain JSON values, expanding aliases into copies (bounded
    by :func:`_build`), without recursion."""
    if type(root) not in (dict, list, set):
        return _scalar(root)
    out = [None]
    stack: list[tuple[Any, Any, Any]] = [(root, out, 0)]
    while stack:
        src, parent, slot = stack.pop()
        if type(src) is list:
            dst: Any = [None] * len(src)
            items = enumerate(src)
        else:  # dict, or a !!set (a mapping to nulls)
            dst = {}
            items = ((_key(k), v) for k, v in (src.items() if type(src) is dict else ((k, None) for k in src)))
        parent[slot] = dst
        for k, v in items:
            if type(v) in (dict, list, set):
                dst[k] = None
                stack.append((v, dst, k))
            else:
                dst[k] = _scalar(v)
    return out[0]


def load_yaml(data: bytes) -> Any:
    """Parse one YAML document within the bounds; returns plain JSON values. Raises
    :class:`LimitError` for a bound and ``yaml.YAMLError`` for malformed YAML."""
    doc, aliased = _build(data)
    return _plain(doc) if aliased else doc


def yaml_error_text(e: yaml.YAMLError) -> str:
    """``yaml: line N: problem``, the form of Go's yaml errors."""
    problem = getattr(e, "problem", None)
    mark = getattr(e, "problem_mark", None)
    if problem and mark is not None:
        return f"yaml: line {mark.line + 1}: {problem}"
    if problem:
        return f"yaml: {problem}"
    return "yaml: " + (str(e).splitlines()[0] if str(e) else "unknown problem parsing YAML content")


__all__ = ["MAX_DEPTH", "MAX_OBJECT_DEPTH", "MAX_ALIAS_EXPANSION", "LimitError", "check_depth", "scrub_surrogates", "load_yaml",
           "yaml_error_text"]
