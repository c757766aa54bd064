"""YAML request bodies (create/update as ``application/yaml``, apply patches) read as
``sigs.k8s.io/yaml`` reads them, within the bounds of :mod:`.limits`.

libyaml (PyYAML's C parser) scans and parses: its scanner is the one Go's yaml.v2 ports,
so it refuses what Go refuses (e.g. the escape ``"\\ud800"``). The document is built from
its event stream in one iterative pass that also measures it: depth with aliases
expanded, and yaml.v2's decode and alias counts, computed per anchor rather than by
expanding, so an alias bomb is refused before anything grows. Values convert as
sigs.k8s.io/yaml converts YAML to JSON: non-string keys become strings, timestamps stay
strings, integers beyond 64 bits become floats; only the first document is read.
"""
from __future__ import annotations

import datetime as _dt
import math
from typing import Any

import yaml

from .limits import MAX_ALIAS_EXPANSION, MAX_DEPTH, LimitError

_INT_MIN, _UINT_MAX = -(1 << 63), (1 << 64) - 1


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
_INT_TAG = "tag:yaml.org,2002:int"
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
    if tag == _INT_TAG and len(ev.value) > 18:
        return _big_int(ev)
    construct = yaml.constructor.SafeConstructor.yaml_constructors.get(tag)
    if construct is None:
        raise yaml.constructor.ConstructorError(None, None, f"could not determine a constructor for the tag {tag!r}",
                                                ev.start_mark)
    return _scalar(construct(_CONSTRUCTOR, yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark,
                                                           style=ev.style)))


def _big_int(ev: yaml.ScalarEvent) -> Any:
    """An integer that may not fit 64 bits, as yaml.v2 resolves it: int64/uint64 when it
    fits, else a float64 when ``ParseFloat`` is in range, else the plain text (a string)."""
    try:
        v = yaml.constructor.SafeConstructor.yaml_constructors[_INT_TAG](
            _CONSTRUCTOR, yaml.ScalarNode(_INT_TAG, ev.value, ev.start_mark, ev.end_mark, style=ev.style))
    except ValueError:  # beyond Python's int-from-text digit limit: far beyond 64 bits
        v = None
    if v is not None and _INT_MIN <= v <= _UINT_MAX:
        return v
    try:
        f = float(ev.value.replace("_", ""))
    except ValueError:  # hex, octal or sexagesimal beyond 64 bits: no float form in Go either
        return ev.value
    return ev.value if math.isinf(f) else f


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
    if t is int:  # from an explicit !!int tag: within 64 bits, else as Go's float64 or text
        if _INT_MIN <= v <= _UINT_MAX:
            return v
        try:
            return float(v)
        except OverflowError:
            return str(v)
    if t is bytes:  # !!binary: yaml.v2 gives the decoded bytes as a string
        return v.decode("utf-8", "replace")
    if t in (_dt.datetime, _dt.date):  # an explicit !!timestamp
        return v.isoformat().replace("+00:00", "Z")
    return v


def _plain(root: Any) -> Any:
    """Copy a document into independent containers, expanding aliases (bounded by
    :func:`_build`), without recursion."""
    if type(root) not in (dict, list):
        return root
    out = [None]
    stack: list[tuple[Any, Any, Any]] = [(root, out, 0)]
    while stack:
        src, parent, slot = stack.pop()
        if type(src) is list:
            dst: Any = [None] * len(src)
            items: Any = enumerate(src)
        else:
            dst = {}
            items = src.items()
        parent[slot] = dst
        for k, v in items:
            if type(v) is dict or type(v) is list:
                dst[k] = None
                stack.append((v, dst, k))
            else:
                dst[k] = v
    return out[0]


def load_yaml(data: bytes) -> Any:
    """Parse one YAML document within the bounds; returns plain JSON values. Raises
    :class:`LimitError` for a bound and ``yaml.YAMLError`` for malformed YAML."""
    try:
        doc, aliased = _build(data)
    except yaml.YAMLError as e:
        # libyaml >= 0.2.6 (some PyYAML wheels bundle it) has a nesting limit of its own (1,000)
        # that its scanner, reading ahead, can reach before our bound sees the events: the
        # same refusal, in the same words
        if "exceeded maximum nesting depth" in str(getattr(e, "problem", "") or e):
            raise LimitError(f"yaml: exceeded max depth of {MAX_DEPTH}") from None
        raise
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


__all__ = ["load_yaml", "yaml_error_text"]
