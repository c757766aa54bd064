"""JSON patch (RFC 6902) with evanphx/json-patch v4 semantics."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..jsonscan import type_error
from .errors import DEFAULT_MAX_COPY_BYTES, MAX_JSON_PATCH_OPERATIONS, PatchError, _unprocessable


_MISSING = object()


def _atoi(s: str) -> int:
    """``strconv.Atoi``; ValueError with Go's message."""
    body = s[1:] if s[:1] in ("+", "-") else s
    if not body or not body.isascii() or not body.isdigit():
        raise ValueError(f'strconv.Atoi: parsing "{s}": invalid syntax')
    v = int(s)
    if not -(1 << 63) <= v < (1 << 63):
        raise ValueError(f'strconv.Atoi: parsing "{s}": value out of range')
    return v


def _unescape_token(t: str) -> str:
    return t.replace("~1", "/").replace("~0", "~")


def _find_container(doc: Any, path: str) -> tuple[Any, str] | None:
    """``findObject``: the container of the last path token and that token, or None."""
    split = path.split("/")
    if len(split) < 2:
        return None
    node = doc
    for part in split[1:-1]:
        token = _unescape_token(part)
        if isinstance(node, dict):
            node = node.get(token)
        else:
            try:
                node = node[_list_index(node, token, len(node))]
            except ValueError:
                return None
        if not isinstance(node, (dict, list)):
            return None
    return node, _unescape_token(split[-1])


def _list_index(lst: list, key: str, size: int) -> int:
    """Resolve ``key`` against a list of ``size`` (negative counts from the end, as v4)."""
    idx = _atoi(key)
    if idx < 0:
        if idx < -size:
            raise ValueError(f"Unable to access invalid index: {idx}: invalid index referenced")
        idx += size
    if idx >= size:
        raise ValueError(f"Unable to access invalid index: {idx}: invalid index referenced")
    return idx


def _get(con: Any, key: str) -> Any:
    """Container get; a missing object key reads as ``_MISSING``."""
    if isinstance(con, dict):
        return con.get(key, _MISSING)
    return con[_list_index(con, key, len(con))]


def _add(con: Any, key: str, value: Any) -> None:
    if isinstance(con, dict):
        con[key] = value
        return
    if key == "-":
        con.append(value)
        return
    try:
        idx = _atoi(key)
    except ValueError as e:
        raise ValueError(f"value was not a proper array index: '{key}': {e}") from None
    size = len(con) + 1
    if idx >= size or idx < -size:
        raise ValueError(f"Unable to access invalid index: {idx}: invalid index referenced")
    con.insert(idx + size if idx < 0 else idx, value)


def _remove(con: Any, key: str) -> None:
    if isinstance(con, dict):
        if key not in con:
            raise ValueError(f"Unable to remove nonexistent key: {key}: missing value")
        del con[key]
        return
    del con[_list_index(con, key, len(con))]


def _json_equal(a: Any, b: Any) -> bool:
    """Structural JSON equality (booleans are not numbers)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return (isinstance(b, dict) and a.keys() == b.keys()
                and all(_json_equal(v, b[k]) for k, v in a.items()))
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_json_equal, a, b))
    if isinstance(a, (int, float)):
        return isinstance(b, (int, float)) and a == b
    return type(a) is type(b) and a == b


def _op_string(op: Mapping[str, Any], field: str, missing: str) -> str:
    """``Operation.Path()`` / ``From()``; ValueError with the library's message."""
    v = op.get(field)
    if v is None:
        raise ValueError(missing)
    if not isinstance(v, str):
        raise ValueError(type_error(v, "string"))
    return v


def _path_of(op: Mapping[str, Any]) -> str:
    return _op_string(op, "path", "operation missing path field: missing value")


def _from_of(op: Mapping[str, Any]) -> str:
    return _op_string(op, "from", "operation, missing from field: missing value")


def _value_of(op: Mapping[str, Any]) -> Any:
    """The operation's value (absent reads as null), never aliased into the document."""
    v = op.get("value")
    return orjson.loads(orjson.dumps(v)) if isinstance(v, (dict, list)) else v


class _CopyBudget:
    """Accumulated size of ``copy`` operations (kube's ``JSONPatchMaxCopyBytes``)."""

    __slots__ = ("used", "limit")

    def __init__(self, limit: int):
        self.used, self.limit = 0, limit


def _op_add(doc: Any, op: Mapping[str, Any], _: _CopyBudget) -> Any:
    try:
        path = _path_of(op)
    except ValueError:
        raise ValueError("add operation failed to decode path: missing value") from None
    found = _find_container(doc, path)
    if found is None:
        raise ValueError(f'add operation does not apply: doc is missing path: "{path}": missing value')
    try:
        _add(*found, _value_of(op))
    except ValueError as e:
        raise ValueError(f"error in add for path: '{path}': {e}") from None
    return doc


def _op_remove(doc: Any, op: Mapping[str, Any], _: _CopyBudget) -> Any:
    try:
        path = _path_of(op)
    except ValueError:
        raise ValueError("remove operation failed to decode path: missing value") from None
    found = _find_container(doc, path)
    if found is None:
        raise ValueError(f'remove operation does not apply: doc is missing path: "{path}": missing value')
    try:
        _remove(*found)
    except ValueError as e:
        raise ValueError(f"error in remove for path: '{path}': {e}") from None
    return doc


def _op_replace(doc: Any, op: Mapping[str, Any], _: _CopyBudget) -> Any:
    try:
        path = _path_of(op)
    except ValueError as e:
        raise ValueError(f"replace operation failed to decode path: {e}") from None
    value = _value_of(op)
    if path == "":
        if not isinstance(value, (dict, list)):
            raise ValueError("replace operation value must be object or array: %!w(<nil>)")
        return value
    found = _find_container(doc, path)
    if found is None:
        raise ValueError(f"replace operation does not apply: doc is missing path: {path}: missing value")
    con, key = found
    try:
        _get(con, key)
    except ValueError:
        raise ValueError(f"replace operation does not apply: doc is missing key: {path}: missing value") from None
    # v4 "replaces" a missing object member too: it adds it.
    con[key if isinstance(con, dict) else _list_index(con, key, len(con))] = value
    return doc


def _op_move(doc: Any, op: Mapping[str, Any], _: _CopyBudget) -> Any:
    try:
        from_ = _from_of(op)
    except ValueError as e:
        raise ValueError(f"move operation failed to decode from: {e}") from None
    found = _find_container(doc, from_)
    if found is None:
        raise ValueError(f"move operation does not apply: doc is missing from path: {from_}: missing value")
    con, key = found
    try:
        moved = _get(con, key)
        _remove(con, key)
    except ValueError as e:
        raise ValueError(f"error in move for path: '{key}': {e}") from None
    try:
        path = _path_of(op)
    except ValueError as e:
        raise ValueError(f"move operation failed to decode path: {e}") from None
    # The source is already gone: moving a value into its own child fails here.
    found = _find_container(doc, path)
    if found is None:
        raise ValueError(f"move operation does not apply: doc is missing destination path: {path}: missing value")
    try:
        _add(*found, None if moved is _MISSING else moved)
    except ValueError as e:
        raise ValueError(f"error in move for path: '{path}': {e}") from None
    return doc


def _op_copy(doc: Any, op: Mapping[str, Any], budget: _CopyBudget) -> Any:
    try:
        from_ = _from_of(op)
    except ValueError as e:
        raise ValueError(f"copy operation failed to decode from: {e}") from None
    found = _find_container(doc, from_)
    if found is None:
        raise ValueError(f"copy operation does not apply: doc is missing from path: {from_}: missing value")
    try:
        src = _get(*found)
    except ValueError as e:
        raise ValueError(f"error in copy for from: '{from_}': {e}") from None
    # v4 copies a missing object member as null, counted as 0 bytes.
    try:
        raw = b"" if src is _MISSING else orjson.dumps(src)
    except orjson.JSONEncodeError:  # nested deeper than any object may be (copies of copies)
        raise ValueError(f"error in copy for from: '{from_}': exceeded max depth") from None
    try:
        path = _path_of(op)
    except ValueError:
        raise ValueError("copy operation failed to decode path: missing value") from None
    found = _find_container(doc, path)
    if found is None:
        raise ValueError(f"copy operation does not apply: doc is missing destination path: {path}: missing value")
    budget.used += len(raw)
    if budget.limit > 0 and budget.used > budget.limit:
        raise ValueError("Unable to complete the copy, the accumulated size increase of copy is "
                         f"{budget.used}, exceeding the limit {budget.limit}")
    try:
        _add(*found, orjson.loads(raw) if raw else None)
    except ValueError as e:
        raise ValueError(f"error while adding value during copy: {e}") from None
    return doc


def _op_test(doc: Any, op: Mapping[str, Any], _: _CopyBudget) -> Any:
    try:
        path = _path_of(op)
    except ValueError as e:
        raise ValueError(f"test operation failed to decode path: {e}") from None
    value = op.get("value")
    if path == "":
        if "value" in op and _json_equal(doc, value):
            return doc
        raise ValueError(f"testing value {path} failed: test failed")
    found = _find_container(doc, path)
    if found is None:
        raise ValueError(f"test operation does not apply: is missing path: {path}: missing value")
    try:
        current = _get(*found)
    except ValueError as e:
        raise ValueError(f"error in test for path: '{path}': {e}") from None
    if current is _MISSING or current is None:
        ok = value is None  # a missing or null member equals an absent or null "value"
    else:
        ok = "value" in op and _json_equal(current, value)
    if not ok:
        raise ValueError(f"testing value {path} failed: test failed")
    return doc


_OPERATIONS = {"add": _op_add, "remove": _op_remove, "replace": _op_replace, "move": _op_move,
               "copy": _op_copy, "test": _op_test}


def apply_json_patch(doc: dict, patch_ops: list, *, max_copy_bytes: int = DEFAULT_MAX_COPY_BYTES) -> Any:
    """Apply RFC 6902 operations to a copy of ``doc`` with evanphx/json-patch v4 semantics
    (what kube runs): ``-`` appends, negative indices count from the end, ``replace`` of a
    missing object key adds it, a failed ``test`` or any failing op aborts the patch.

    Raises :class:`PatchError`: 413 beyond 10000 operations, 422 for a failing operation.
    The result is normally a dict (``replace`` of ``""`` with an array yields a list).
    """
    if len(patch_ops) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchError("Request entity too large: The allowed maximum operations in a JSON patch is "
                         f"{MAX_JSON_PATCH_OPERATIONS}, got {len(patch_ops)}",
                         code=413, reason="RequestEntityTooLarge")
    result: Any = orjson.loads(orjson.dumps(doc))
    budget = _CopyBudget(max_copy_bytes)
    for op in patch_ops:
        kind = op.get("op") if op is not None else None
        apply = _OPERATIONS.get(kind) if isinstance(kind, str) else None
        try:
            if apply is None:
                raise ValueError(f"Unexpected kind: {kind if isinstance(kind, str) else 'unknown'}")
            result = apply(result, op, budget)
        except orjson.JSONEncodeError:  # a value nested beyond what may be encoded
            raise _unprocessable("exceeded max depth") from None
        except ValueError as e:
            raise _unprocessable(str(e)) from None
    return result

