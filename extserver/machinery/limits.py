"""Bounds applied once, where a request body is decoded, before anything walks it
(:mod:`.jsonscan` for JSON bodies and patches, :mod:`.yamlscan` for YAML and apply).

kube's decoders refuse JSON nested deeper than 10,000 levels (Go's ``encoding/json``:
``exceeded max depth``) and YAML nested deeper than 10,000 or with excessive aliasing
(``gopkg.in/yaml.v2``, the CVE-2019-11253 fix). Here the depth bound is lower,
:data:`MAX_DEPTH` = 200, because what runs after decoding cannot go deeper: orjson (which
encodes every stored object and response) refuses more than 254 levels, and the patch,
merge and managed-fields walks recurse in Python (limit 1,000 frames, a few per level).
200 leaves room for what wraps an object on the way out (list items +2, Table rows +3,
``managedFields[].fieldsV1`` +5). Checking at the edge means no later walk needs its own
guard; the checks themselves are iterative. tests/unit/test_decode_limits.py runs every
later walk on the deepest object the bounds let through.
"""
from __future__ import annotations

import re
from typing import Any

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


__all__ = ["MAX_DEPTH", "MAX_OBJECT_DEPTH", "MAX_ALIAS_EXPANSION", "LimitError", "check_depth",
           "scrub_surrogates"]
