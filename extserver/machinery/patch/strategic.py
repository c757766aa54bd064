"""Strategic merge patch (k8s.io/apimachinery/pkg/util/strategicpatch, server side)."""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

from ..jsonscan import GO_TYPE, bad_arg_type, go_type_name, plain
from .errors import _bad_request, _internal, _unprocessable

# Strategic merge patch (k8s.io/apimachinery/pkg/util/strategicpatch, server side)
# =======================================================================================

_DIRECTIVE = "$patch"
_DELETE, _REPLACE, _MERGE = "delete", "replace", "merge"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
_SET_ELEMENT_ORDER = "$setElementOrder"

ERR_BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST = "invalid patch format of primitive list"
ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS = "invalid patch format of retainKeys"
ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"
ERR_NO_LIST_OF_LISTS = "lists of lists are not supported"


def _go_float(f: float) -> str:
    """``%v`` of a float64 (``strconv.FormatFloat(f, 'g', -1, 64)``)."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if str(f).startswith("-") else "0"
    sign, digits, exponent = Decimal(repr(f)).normalize().as_tuple()
    ds = "".join(map(str, digits))
    exp = len(ds) + int(exponent) - 1
    neg = "-" if sign else ""
    if exp < -4 or exp >= 6:  # shortest 'g' uses an exponent precision of 6
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{neg}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{neg}0.{'0' * (-exp - 1)}{ds}"
    if len(ds) <= exp + 1:
        return f"{neg}{ds}{'0' * (exp + 1 - len(ds))}"
    return f"{neg}{ds[:exp + 1]}.{ds[exp + 1:]}"


def go_sprint(v: Any) -> str:
    """``fmt.Sprint`` (``%v``) of a decoded JSON value, as Go prints it."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_sprint(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(go_sprint(x) for x in v) + "]"
    return str(v)


def _same(a: Any, b: Any) -> bool:
    """Go's ``==`` on decoded JSON scalars: same dynamic type and value."""
    return type(a) is type(b) and a == b


def _no_merge_key(m: Mapping[str, Any], key: str) -> ValueError:
    return ValueError(f"map: {go_sprint(m)} does not contain declared merge key: {key}")


def _bad_patch_type(t: Any, m: Mapping[str, Any]) -> ValueError:
    if isinstance(t, str):
        shown = t
    elif t is None:
        shown = "%!s(<nil>)"
    else:
        shown = f"%!s({go_type_name(t)}={go_sprint(t)})"
    return ValueError(f"unknown patch type: {shown} in map: {go_sprint(m)}")


class _SMPError(Exception):
    """A strategic merge patch error whose answer kube classifies (400 or 422)."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class _Schema:
    """Patch metadata of one object level: merge keys of lists by dotted field path."""

    __slots__ = ("keys", "path")

    def __init__(self, keys: Mapping[str, str], path: str = ""):
        self.keys = keys
        self.path = path

    def child(self, name: str) -> _Schema:
        return _Schema(self.keys, f"{self.path}.{name}" if self.path else name)

    def list_meta(self, name: str) -> tuple[_Schema, str | None]:
        """(schema of the items, merge key) — None when the list is replaced wholesale."""
        sub = self.child(name)
        return sub, self.keys.get(sub.path)


def _element_kind(*lists: list) -> type:
    """``sliceElementType``: the one element type of the lists."""
    prev: type | None = None
    for lst in lists:
        for v in lst:
            cur = type(v)
            if prev is None:
                prev = cur
                if cur is list:
                    raise _SMPError(ERR_NO_LIST_OF_LISTS, 422)
            elif prev is not cur:
                raise ValueError(f"list element types are not identical: {go_sprint(list(lists))}")
    if prev is None:
        raise ValueError("no elements in any of the given slices")
    return prev


def _find_by_key(items: list, key: str, value: Any) -> int:
    for i, v in enumerate(items):
        if not isinstance(v, dict):
            raise ValueError(f"value for key {i} is not a map")
        if key in v and _same(v[key], value):
            return i
    return -1


def _index(items: list, item: Any, merge_key: str | None, is_map: bool) -> int:
    def val(x: Any) -> Any:
        return x.get(merge_key) if is_map and isinstance(x, dict) else (None if is_map else x)
    want = val(item)
    for i, v in enumerate(items):
        if _same(val(v), want):
            return i
    return -1


def _check_merge_key(merge_key: str, *lists: list) -> None:
    for lst in lists:
        for item in lst:
            if not isinstance(item, dict):
                raise bad_arg_type(GO_TYPE[dict], item)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)


def _normalize_slice_order(to_sort: list, order: list, merge_key: str | None, is_map: bool) -> list:
    to_delete: list = []
    if is_map:
        _check_merge_key(merge_key or "", to_sort, order)
        keep = [v for v in to_sort if v.get(_DIRECTIVE) != _DELETE]
        to_delete = [v for v in to_sort if v.get(_DIRECTIVE) == _DELETE]
        to_sort = keep
    # Every element is in ``order`` here, so ordering by position is what Go's sort does.
    ranked = sorted(to_sort, key=lambda v: _index(order, v, merge_key, is_map))
    return ranked + to_delete


def _merge_sorted(left: list, right: list, server_order: list, merge_key: str | None, is_map: bool) -> list:
    out: list = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], merge_key, is_map)
            ri = _index(server_order, right[j], merge_key, is_map)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _normalize_element_order(patch: list, server_only: list, patch_order: list, server_order: list,
                             merge_key: str | None, is_map: bool) -> list:
    patch = _normalize_slice_order(patch, patch_order, merge_key, is_map)
    server_only = _normalize_slice_order(server_only, server_order, merge_key, is_map)
    return _merge_sorted(server_only, patch, server_order, merge_key, is_map)


def _partition(merged: list, by: list, merge_key: str | None) -> tuple[list, list]:
    """Split ``merged`` into items present in ``by`` and the others."""
    if not merge_key:
        present = [v for v in merged if any(_same(v, b) for b in by)]
        return present, [v for v in merged if not any(_same(v, b) for b in by)]
    inside, outside = [], []
    for v in merged:
        if not isinstance(v, dict):
            raise bad_arg_type(GO_TYPE[dict], v)
        if merge_key not in v:
            raise _no_merge_key(v, merge_key)
        (inside if _find_by_key(by, merge_key, v[merge_key]) >= 0 else outside).append(v)
    return inside, outside


def _remove_directives(obj: Any) -> tuple[Any, bool]:
    if isinstance(obj, dict):
        if _DIRECTIVE in obj:
            return None, False
        out = {}
        for k, v in obj.items():
            nv, keep = _remove_directives(v)
            if keep:
                out[k] = nv
        return out, True
    if isinstance(obj, list):
        res = []
        for v in obj:
            nv, keep = _remove_directives(v)
            if keep:
                res.append(nv)
        return res, True
    return obj, True


def _discard_nulls(v: Any) -> None:
    if isinstance(v, dict):
        for k in [k for k, x in v.items() if x is None]:
            del v[k]
        for x in v.values():
            _discard_nulls(x)
    elif isinstance(v, list):
        for x in v:
            _discard_nulls(x)


def _extract_key(s: str, prefix: str, error: str) -> str:
    parts = s.split("/", 1)
    if len(parts) <= 1 or parts[0] != prefix:
        raise _SMPError(error, 400)
    return parts[1]


def _apply_retain_keys(original: dict, patch: dict) -> None:
    if _RETAIN_KEYS not in patch:
        return
    retain = patch.pop(_RETAIN_KEYS)
    if not isinstance(retain, list):
        raise _SMPError(ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS, 400)
    for k, v in patch.items():
        if v is None or k.startswith(_DELETE_FROM_PRIMITIVE_LIST) or k.startswith(_SET_ELEMENT_ORDER):
            continue
        if not any(_same(k, r) for r in retain):
            raise _SMPError(ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS, 400)
    for k in [k for k in original if not any(_same(k, r) for r in retain)]:
        del original[k]


def _validate_set_order(patch_list: Any, order: Any, merge_key: str | None) -> None:
    if not isinstance(order, list) or not isinstance(patch_list, list):
        raise _SMPError(ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER, 400)
    if not order or not patch_list:
        return
    if merge_key:
        for v in patch_list:
            if not isinstance(v, dict):
                raise bad_arg_type(GO_TYPE[dict], v)
        items = [v for v in patch_list if v.get(_DIRECTIVE) != _DELETE]
    else:
        items = patch_list
    pi = oi = 0
    while pi < len(items) and oi < len(order):
        if isinstance(items[pi], dict) and _DIRECTIVE in items[pi]:
            pi += 1
            continue
        if _merge_key_equal(items[pi], order[oi], merge_key):
            pi += 1
        oi += 1
    if pi < len(items) and oi >= len(order):
        raise ValueError(f"The order in patch list:\n{go_sprint(patch_list)}\n doesn't match "
                         f"{_SET_ELEMENT_ORDER} list:\n{go_sprint(order)}\n")


def _merge_key_equal(left: Any, right: Any, merge_key: str | None) -> bool:
    if not merge_key:
        return _same(left, right)
    for side in (left, right):
        if not isinstance(side, dict):
            raise bad_arg_type(GO_TYPE[dict], side)
        if merge_key not in side:
            raise _no_merge_key(side, merge_key)
    return _same(left[merge_key], right[merge_key])


def _merge_set_element_order(original: dict, patch: dict, schema: _Schema) -> None:
    """``mergePatchIntoOriginal``: merge and order lists named by ``$setElementOrder/<f>``."""
    for key in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER)]:
        order = patch.pop(key)
        if not isinstance(order, list):
            raise bad_arg_type(GO_TYPE[list], order)
        field = _extract_key(key, _SET_ELEMENT_ORDER, ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER)
        found_orig, found_patch = field in original, field in patch
        orig_list, patch_list = original.get(field, []), patch.get(field, [])
        for found, v in ((found_orig, orig_list), (found_patch, patch_list)):
            if found and not isinstance(v, list):
                raise bad_arg_type(GO_TYPE[list], v)
        sub, merge_key = schema.list_meta(field)
        _validate_set_order(patch_list, order, merge_key)
        if found_orig and not found_patch:
            merged = orig_list
        elif found_patch and not found_orig:
            merged, _ = _remove_directives(patch_list)
        elif found_orig and found_patch:
            merged = _merge_slice_handler(orig_list, patch_list, sub, merge_key, False)
        else:
            continue
        inside, outside = _partition(merged, order, merge_key)
        kind = _element_kind(orig_list, patch_list)
        original[field] = _normalize_element_order(inside, outside, order, orig_list, merge_key, kind is dict)
        patch.pop(field, None)


def _merge_map(original: dict | None, patch: dict, schema: _Schema) -> dict:
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == _REPLACE:
            del patch[_DIRECTIVE]
            return patch
        if directive == _DELETE:
            return {}
        raise _bad_patch_type(directive, patch)
    if original is None:
        original = {}
    _apply_retain_keys(original, patch)
    _merge_set_element_order(original, patch, schema)

    for k, patch_v in patch.items():
        is_delete_list = k.startswith(_DELETE_FROM_PRIMITIVE_LIST)
        if is_delete_list:
            k = _extract_key(k, _DELETE_FROM_PRIMITIVE_LIST, ERR_BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST)
        if patch_v is None:
            original.pop(k, None)
            continue
        if k not in original or type(original[k]) is not type(patch_v):
            if not is_delete_list:
                _discard_nulls(patch_v)
                value, keep = _remove_directives(patch_v)
                if keep:
                    original[k] = value
                else:
                    original.pop(k, None)
            continue
        cur = original[k]
        if isinstance(cur, dict):
            original[k] = _merge_map(cur, patch_v, schema.child(k))
        elif isinstance(cur, list):
            sub, merge_key = schema.list_meta(k)
            original[k] = _merge_slice_handler(cur, patch_v, sub, merge_key, is_delete_list)
        else:
            original[k] = patch_v
    return original


def _merge_slice_handler(original: list, patch: list, schema: _Schema, merge_key: str | None,
                         is_delete_list: bool) -> list:
    if merge_key is None and not is_delete_list:
        return patch
    return _merge_slice(original, patch, schema, merge_key or "", is_delete_list)


def _merge_slice(original: list, patch: list, schema: _Schema, merge_key: str, is_delete_list: bool) -> list:
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    if kind is not dict:
        if is_delete_list:
            return [v for v in original if not any(_same(v, d) for d in patch)]
        merged: list = []
        for v in original + patch:
            if not any(_same(v, m) for m in merged):
                merged.append(v)
    else:
        if not merge_key:
            raise ValueError(f"cannot merge lists without merge key for {schema.path}")
        original, patch = _merge_special_elements(original, patch, merge_key)
        merged = list(original)
        for v in patch:
            if merge_key not in v:
                raise _no_merge_key(v, merge_key)
            i = _find_by_key(merged, merge_key, v[merge_key])
            if i >= 0:
                merged[i] = _merge_map(merged[i], v, schema)
            else:
                merged.append(v)
    inside, outside = _partition(merged, patch, merge_key or None)
    return _normalize_element_order(inside, outside, patch, original, merge_key or None, kind is dict)


def _merge_special_elements(original: list, patch: list, merge_key: str) -> tuple[list, list]:
    """Handle ``{"$patch": "delete"|"replace"}`` items of a merged list."""
    plain: list = []
    replace = False
    for v in patch:
        if _DIRECTIVE not in v:
            plain.append(v)
            continue
        directive = v[_DIRECTIVE]
        if directive == _DELETE:
            if merge_key not in v:
                raise _no_merge_key(v, merge_key)
            original = [o for o in original
                        if not (isinstance(o, dict) and merge_key in o and _same(o[merge_key], v[merge_key]))]
        elif directive == _REPLACE:
            replace = True
        elif directive == _MERGE:
            raise ValueError("merging lists cannot yet be specified in the patch")
        else:
            raise _bad_patch_type(directive, v)
    if replace:
        return plain, []
    return original, plain


def strategic_merge_patch(doc: dict, patch: dict, list_merge_keys: Mapping[str, str] | None = None) -> dict:
    """Apply a strategic merge patch to a copy of ``doc``, as kube's server does.

    Like a merge patch, except for lists declared in ``list_merge_keys`` — dotted field
    paths from the object root (list items are transparent: ``spec.containers.ports``)
    mapped to the merge key (``"name"``), or to ``""`` for a list of scalars merged as a
    set. Such lists merge item by item; other lists are replaced. Directives:
    ``$patch: replace|delete`` in objects and list items, ``$deleteFromPrimitiveList/<f>``,
    ``$setElementOrder/<f>`` and ``$retainKeys``.

    Raises :class:`PatchError` with the status kube uses (400, 422 or 500).
    """
    try:
        return _merge_map(orjson.loads(orjson.dumps(doc)), plain(patch) if patch else {},
                          _Schema(list_merge_keys or {}))
    except _SMPError as e:
        if e.code == 400:
            raise _bad_request(str(e)) from None
        raise _unprocessable(str(e)) from None
    except ValueError as e:
        raise _internal(str(e)) from None
