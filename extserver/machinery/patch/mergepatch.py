"""JSON merge patch (RFC 7386, evanphx/json-patch v4 MergePatch)."""
from __future__ import annotations

from typing import Any

import orjson


def _prune_nulls(value: Any) -> Any:
    """Drop null members of objects, recursively (nulls inside arrays stay)."""
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) for v in value]
    return value


def _merge(cur: Any, patch: Any) -> Any:
    if not isinstance(cur, dict):
        return _prune_nulls(patch)
    if not isinstance(patch, dict):
        return patch
    for k, v in patch.items():
        if v is None:
            cur.pop(k, None)
        elif k not in cur or cur[k] is None:
            cur[k] = _prune_nulls(v)
        else:
            cur[k] = _merge(cur[k], v)
    return cur


def apply_merge_patch(doc: dict, patch: Any) -> Any:
    """RFC 7386 merge of ``patch`` into a copy of ``doc``: objects merge recursively,
    ``null`` deletes, anything else (arrays included) replaces. A non-object patch is
    the result itself (nulls pruned from objects inside it)."""
    if not isinstance(patch, dict):
        return _prune_nulls(patch)
    return _merge(orjson.loads(orjson.dumps(doc)), patch)

