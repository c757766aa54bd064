"""JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge patch.

Behaviour and error answers follow k8s.io/apiserver's ``endpoints/handlers/patch.go``
(v0.36) and the libraries it uses: ``gopkg.in/evanphx/json-patch.v4`` for JSON and merge
patches, ``k8s.io/apimachinery/pkg/util/strategicpatch`` for strategic merge patches.

How kube answers a bad patch (every failure here is a :class:`PatchError`, a
``StatusError`` that renders exactly so):

* undecodable patch body → 400 ``BadRequest`` with Go's decoder message
  (``error decoding patch: `` first when ``fieldValidation`` is Strict or Warn);
* more than 10000 JSON-patch operations → 413 ``RequestEntityTooLarge``;
* a JSON-patch operation that fails (missing path, bad index, failed ``test``, ...) →
  422 ``Invalid`` with the generic message ``the server rejected our request due to an
  error in our request`` (kube drops the library's text; it is kept in ``.detail``);
* merge patch that is ``null`` or not JSON → 400 ``Invalid JSON Patch``;
* strategic merge patch: bad directive formats → 400, lists of lists or content that
  does not match ``$retainKeys`` → 422 (generic message), anything else → 500 with the
  library's text. Custom resources (CRDs) do not offer strategic merge patch at all
  (415); types served by k8s.io/apiserver from Go structs (aggregated and built-in) do.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

from .errors import StatusError
from .validation import go_quote

MAX_JSON_PATCH_OPERATIONS = 10000
#: kube's ``JSONPatchMaxCopyBytes`` default (the max request body size, 3 MiB)
DEFAULT_MAX_COPY_BYTES = 3 * 1024 * 1024
UNPROCESSABLE_MESSAGE = "the server rejected our request due to an error in our request"


class PatchError(StatusError):
    """A patch kube would refuse; ``detail`` keeps the underlying library message."""

    def __init__(self, message: str, *, code: int, reason: str, detail: str = ""):
        super().__init__(message, code=code, reason=reason)
        self.detail = detail or message

    def status(self) -> dict:
        st = super().status()
        if not self.reason:
            del st["reason"]  # Go omits an empty reason
        if self.code == 422:
            # NewGenericServerResponse always sets (empty) details; code stays last.
            st.setdefault("details", {})
            st["code"] = st.pop("code")
        return st


def _bad_request(message: str) -> PatchError:
    return PatchError(message, code=400, reason="BadRequest")


def _unprocessable(detail: str) -> PatchError:
    return PatchError(UNPROCESSABLE_MESSAGE, code=422, reason="Invalid", detail=detail)


def _internal(message: str) -> PatchError:
    # An error kube's handler does not classify: 500 with an empty reason.
    return PatchError(message, code=500, reason="")


# =======================================================================================
# Go's encoding/json messages
# =======================================================================================

def _quote_char(c: int) -> str:
    """encoding/json ``quoteChar``."""
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    return "'" + go_quote(chr(c))[1:-1] + "'"


_SPACE = frozenset(b" \t\r\n")
_DIGITS = frozenset(b"0123456789")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = frozenset(b'bfnrt\\/"')


class _GoSyntaxError(Exception):
    pass


class _Scanner:
    """A port of the state machine of Go's ``encoding/json`` scanner, for its messages.

    Each state is a method taking the next byte and returning the next state."""

    def __init__(self) -> None:
        self.stack: list[str] = []  # "key" | "value" (inside an object) | "array"
        self.end_top = False

    @staticmethod
    def _error(c: int, context: str) -> _GoSyntaxError:
        return _GoSyntaxError(f"invalid character {_quote_char(c)} {context}")

    def begin_value_or_empty(self, c: int):
        if c in _SPACE:
            return self.begin_value_or_empty
        if c == 0x5D:  # ]
            return self.end_value(c)
        return self.begin_value(c)

    def begin_value(self, c: int):
        if c in _SPACE:
            return self.begin_value
        if c == 0x7B:  # {
            self.stack.append("key")
            return self.begin_string_or_empty
        if c == 0x5B:  # [
            self.stack.append("array")
            return self.begin_value_or_empty
        if c == 0x22:
            return self.in_string
        if c == 0x2D:
            return self.neg
        if c == 0x30:
            return self.zero
        if c in _DIGITS:
            return self.one
        literal = {0x74: b"true", 0x66: b"false", 0x6E: b"null"}.get(c)
        if literal is not None:
            return self._literal(literal, 1)
        raise self._error(c, "looking for beginning of value")

    def _literal(self, word: bytes, pos: int):
        def state(c: int):
            if c != word[pos]:
                raise self._error(c, f"in literal {word.decode()} (expecting {_quote_char(word[pos])})")
            return self.end_value if pos + 1 == len(word) else self._literal(word, pos + 1)
        return state

    def begin_string_or_empty(self, c: int):
        if c in _SPACE:
            return self.begin_string_or_empty
        if c == 0x7D:  # }
            self.stack[-1] = "value"
            return self.end_value(c)
        return self.begin_string(c)

    def begin_string(self, c: int):
        if c in _SPACE:
            return self.begin_string
        if c == 0x22:
            return self.in_string
        raise self._error(c, "looking for beginning of object key string")

    def end_value(self, c: int):
        if not self.stack:
            self.end_top = True
            return self.end_top_state(c)
        if c in _SPACE:
            return self.end_value
        top = self.stack[-1]
        if top == "key":
            if c == 0x3A:  # :
                self.stack[-1] = "value"
                return self.begin_value
            raise self._error(c, "after object key")
        if top == "value":
            if c == 0x2C:  # ,
                self.stack[-1] = "key"
                return self.begin_string
            if c == 0x7D:
                return self._pop()
            raise self._error(c, "after object key:value pair")
        if c == 0x2C:
            return self.begin_value
        if c == 0x5D:
            return self._pop()
        raise self._error(c, "after array element")

    def _pop(self):
        self.stack.pop()
        if not self.stack:
            self.end_top = True
            return self.end_top_state
        return self.end_value

    def end_top_state(self, c: int):
        if c not in _SPACE:
            raise self._error(c, "after top-level value")
        return self.end_top_state

    def in_string(self, c: int):
        if c == 0x22:
            return self.end_value
        if c == 0x5C:
            return self.in_string_esc
        if c < 0x20:
            raise self._error(c, "in string literal")
        return self.in_string

    def in_string_esc(self, c: int):
        if c in _ESCAPES:
            return self.in_string
        if c == 0x75:  # u
            return self._hex(4)
        raise self._error(c, "in string escape code")

    def _hex(self, left: int):
        def state(c: int):
            if c not in _HEX:
                raise self._error(c, "in \\u hexadecimal character escape")
            return self.in_string if left == 1 else self._hex(left - 1)
        return state

    def neg(self, c: int):
        if c == 0x30:
            return self.zero
        if c in _DIGITS:
            return self.one
        raise self._error(c, "in numeric literal")

    def one(self, c: int):
        return self.one if c in _DIGITS else self.zero(c)

    def zero(self, c: int):
        if c == 0x2E:  # .
            return self.dot
        if c in (0x65, 0x45):  # e E
            return self.exp
        return self.end_value(c)

    def dot(self, c: int):
        if c in _DIGITS:
            return self.dot0
        raise self._error(c, "after decimal point in numeric literal")

    def dot0(self, c: int):
        if c in _DIGITS:
            return self.dot0
        if c in (0x65, 0x45):
            return self.exp
        return self.end_value(c)

    def exp(self, c: int):
        if c in (0x2B, 0x2D):  # + -
            return self.exp_sign
        return self.exp_sign(c)

    def exp_sign(self, c: int):
        if c in _DIGITS:
            return self.exp0
        raise self._error(c, "in exponent of numeric literal")

    def exp0(self, c: int):
        return self.exp0 if c in _DIGITS else self.end_value(c)


def go_json_syntax_error(data: bytes) -> str | None:
    """The message Go's ``json.Unmarshal`` gives for malformed ``data`` (its scanner's
    ``SyntaxError``), or None when ``data`` is syntactically valid JSON."""
    scanner = _Scanner()
    state = scanner.begin_value
    try:
        for c in data:
            state = state(c)
        if not scanner.end_top:
            state(0x20)  # Go's eof(): a space may still end a top-level number
    except _GoSyntaxError as e:
        return str(e)
    return None if scanner.end_top else "unexpected end of JSON input"


def _loads(body: bytes) -> Any:
    """Parse JSON; on malformed input raise ``ValueError`` with Go's message."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    msg = go_json_syntax_error(body)
    if msg is not None:
        raise ValueError(msg)
    # Valid for Go but refused by orjson (invalid UTF-8): use the stdlib on the repaired text.
    return json.loads(body.decode("utf-8", "replace"))


_JSON_KIND = {dict: "object", list: "array", str: "string", bool: "bool", int: "number", float: "number"}
_GO_TYPE = {dict: "map[string]interface {}", list: "[]interface {}", str: "string", bool: "bool",
            int: "int64", float: "float64"}


def _go_type_name(v: Any) -> str:
    """``%s`` of ``reflect.TypeOf(v)`` for a decoded JSON value."""
    return _GO_TYPE.get(type(v), "%!s(<nil>)")


def _bad_arg_type(expected: str, actual: Any) -> ValueError:
    """``mergepatch.ErrBadArgType``."""
    return ValueError(f"expected a {expected}, but received a {_go_type_name(actual)}")


def _type_error(value: Any, go_type: str) -> str:
    return f"json: cannot unmarshal {_JSON_KIND[type(value)]} into Go value of type {go_type}"


class _Dups(dict):
    """A decoded object that remembers its duplicated keys (last value wins, as in Go)."""

    __slots__ = ("dups",)


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict:
    d = _Dups(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        d.dups = []
        for k, _ in pairs:
            if k in seen and k not in d.dups:
                d.dups.append(k)
            seen.add(k)
    return d


def _duplicate_fields(value: Any, path: str = "") -> list[str]:
    """``duplicate field "a.b[0].c"`` strict errors, in document order (kjson's format)."""
    out: list[str] = []
    if isinstance(value, dict):
        for k in getattr(value, "dups", ()):
            out.append("duplicate field " + go_quote(f"{path}.{k}" if path else k))
        for k, v in value.items():
            out.extend(_duplicate_fields(v, f"{path}.{k}" if path else k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_duplicate_fields(v, f"{path}[{i}]"))
    return out


def _plain(value: Any) -> Any:
    """Drop the ``_Dups`` wrappers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _loads_strict(body: bytes) -> tuple[Any, list[str]]:
    _loads(body)  # syntax errors first, with Go's text
    value = json.loads(body.decode("utf-8", "replace"), object_pairs_hook=_pairs_hook)
    return _plain(value), _duplicate_fields(value)


# =======================================================================================
# Decoding patch bodies
# =======================================================================================

_OP_FIELDS = ("op", "path", "from", "value")


def decode_json_patch(body: bytes, *, strict: bool = False) -> tuple[list[Any], list[str]]:
    """Decode an ``application/json-patch+json`` body as kube does.

    ``strict`` is ``fieldValidation`` Strict or Warn: kube then first decodes into its own
    op struct, reporting unknown/duplicate op fields as strict errors (returned, each like
    ``json patch unknown field "[0].foo"``; kube rejects them with 422 under Strict and
    warns under Warn) and prefixing decode failures with ``error decoding patch: ``.
    Raises :class:`PatchError` (400) for a body that is not a list of objects.
    """
    strict_errors: list[str] = []
    try:
        if strict:
            ops, dups = _loads_strict(body)
            if ops is not None and not isinstance(ops, list):
                raise ValueError(_type_error(ops, "[]handlers.jsonPatchOp"))
            for i, op in enumerate(ops or ()):
                if op is None:
                    continue
                if not isinstance(op, dict):
                    raise ValueError(_type_error(op, "handlers.jsonPatchOp"))
                for f in ("op", "path", "from"):
                    v = op.get(f)
                    if v is not None and not isinstance(v, str):
                        raise ValueError(f"json: cannot unmarshal {_JSON_KIND[type(v)]} into Go struct field "
                                         f"jsonPatchOp.{f} of type string")
                strict_errors.extend("json patch unknown field " + go_quote(f"[{i}].{k}")
                                     for k in op if k not in _OP_FIELDS)
            strict_errors.extend("json patch " + d for d in dups)
        else:
            ops = _loads(body)
    except ValueError as e:
        raise _bad_request(f"error decoding patch: {e}" if strict else str(e)) from None
    if ops is None:
        return [], strict_errors
    if not isinstance(ops, list):
        raise _bad_request(_type_error(ops, "jsonpatch.Patch"))
    for op in ops:
        if op is not None and not isinstance(op, dict):
            raise _bad_request(_type_error(op, "jsonpatch.Operation"))
    return ops, strict_errors


def decode_merge_patch(body: bytes, *, strict: bool = False) -> tuple[Any, list[str]]:
    """Decode an ``application/merge-patch+json`` body as kube does.

    Returns the patch and, with ``strict``, ``duplicate field "..."`` strict errors.
    Raises :class:`PatchError` 400 ``Invalid JSON Patch`` for malformed JSON, ``null`` or a
    scalar (with ``strict``: ``error decoding patch: ...`` for anything but an object or null).
    An array is returned as is: the merge result is then that array, which kube fails to
    decode into the object (a 422 ``Invalid`` on field ``patch``, the caller's concern).
    """
    strict_errors: list[str] = []
    if strict:
        try:
            patch, strict_errors = _loads_strict(body)
            if patch is not None and not isinstance(patch, dict):
                raise ValueError(_type_error(patch, "map[string]interface {}"))
        except ValueError as e:
            raise _bad_request(f"error decoding patch: {e}") from None
    else:
        try:
            patch = _loads(body)
        except ValueError:
            raise _bad_request("Invalid JSON Patch") from None
    if patch is None or not isinstance(patch, (dict, list)):
        raise _bad_request("Invalid JSON Patch")
    return patch, strict_errors


def decode_strategic_merge_patch(body: bytes, *, strict: bool = False) -> tuple[dict, list[str]]:
    """Decode an ``application/strategic-merge-patch+json`` body (must be an object or
    ``null``); 400 with Go's decoder message otherwise. Returns (patch, strict errors)."""
    try:
        if strict:
            patch, strict_errors = _loads_strict(body)
        else:
            patch, strict_errors = _loads(body), []
        if patch is not None and not isinstance(patch, dict):
            raise ValueError(_type_error(patch, "map[string]interface {}"))
    except ValueError as e:
        raise _bad_request(str(e)) from None
    return patch or {}, strict_errors


# =======================================================================================
# JSON patch (evanphx/json-patch v4 semantics)
# =======================================================================================

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
        raise ValueError(_type_error(v, "string"))
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
    raw = b"" if src is _MISSING else orjson.dumps(src)
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
        except ValueError as e:
            raise _unprocessable(str(e)) from None
    return result


# =======================================================================================
# JSON merge patch (RFC 7386, evanphx/json-patch v4 MergePatch)
# =======================================================================================

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


# =======================================================================================
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
        shown = f"%!s({_go_type_name(t)}={go_sprint(t)})"
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
                raise _bad_arg_type(_GO_TYPE[dict], item)
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
            raise _bad_arg_type(_GO_TYPE[dict], v)
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
                raise _bad_arg_type(_GO_TYPE[dict], v)
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
            raise _bad_arg_type(_GO_TYPE[dict], side)
        if merge_key not in side:
            raise _no_merge_key(side, merge_key)
    return _same(left[merge_key], right[merge_key])


def _merge_set_element_order(original: dict, patch: dict, schema: _Schema) -> None:
    """``mergePatchIntoOriginal``: merge and order lists named by ``$setElementOrder/<f>``."""
    for key in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER)]:
        order = patch.pop(key)
        if not isinstance(order, list):
            raise _bad_arg_type(_GO_TYPE[list], order)
        field = _extract_key(key, _SET_ELEMENT_ORDER, ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER)
        found_orig, found_patch = field in original, field in patch
        orig_list, patch_list = original.get(field, []), patch.get(field, [])
        for found, v in ((found_orig, orig_list), (found_patch, patch_list)):
            if found and not isinstance(v, list):
                raise _bad_arg_type(_GO_TYPE[list], v)
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
        return _merge_map(orjson.loads(orjson.dumps(doc)), _plain(patch) if patch else {},
                          _Schema(list_merge_keys or {}))
    except _SMPError as e:
        if e.code == 400:
            raise _bad_request(str(e)) from None
        raise _unprocessable(str(e)) from None
    except ValueError as e:
        raise _internal(str(e)) from None
