"""Go-compatible JSON decoding of request bodies: Go's ``encoding/json`` syntax-error
messages (a port of its scanner, written by hand because the messages must match), its
tolerance of invalid UTF-8 and lone surrogates, and kjson's duplicate-field errors; every
result within the bounds of :mod:`.limits`."""
from __future__ import annotations

import json
import math
from typing import Any

import orjson

from .limits import MAX_DEPTH, check_depth, scrub_surrogates
from .validation import go_quote


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
            if len(self.stack) > MAX_DEPTH:
                raise self._error(c, "exceeded max depth")
            return self.begin_string_or_empty
        if c == 0x5B:  # [
            self.stack.append("array")
            if len(self.stack) > MAX_DEPTH:
                raise self._error(c, "exceeded max depth")
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


def _int(text: str) -> int | float:
    """Go decodes integers beyond 64 bits into ``interface{}`` as float64 (as orjson does);
    one beyond float64's range is sigs.k8s.io/json's error."""
    if len(text) <= 20:
        n = int(text)
        if -(1 << 63) <= n < (1 << 64):
            return n
    f = float(text)  # never int(text): Python refuses to convert more than 4,300 digits
    if math.isinf(f):
        raise ValueError(f"json: cannot unmarshal number {text} into Go value of type float64")
    return f


def _stdlib_loads(text: str, **kw) -> Any:
    return scrub_surrogates(json.loads(text, parse_int=_int, **kw))


def loads(body: bytes) -> Any:
    """Parse JSON within :data:`~.limits.MAX_DEPTH`; on malformed input raise
    ``ValueError`` with Go's message."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        if body.count(b"{") + body.count(b"[") > MAX_DEPTH:  # else too few brackets to nest so deep
            check_depth(doc)
        return doc
    msg = go_json_syntax_error(body)  # bounded in depth too
    if msg is not None:
        raise ValueError(msg)
    # Valid for Go but refused by orjson (invalid UTF-8, lone surrogates): the stdlib on
    # the repaired text, which the scanner has just bounded in depth.
    return _stdlib_loads(body.decode("utf-8", "replace"))


JSON_KIND = {dict: "object", list: "array", str: "string", bool: "bool", int: "number", float: "number"}
GO_TYPE = {dict: "map[string]interface {}", list: "[]interface {}", str: "string", bool: "bool",
            int: "int64", float: "float64"}


def go_type_name(v: Any) -> str:
    """``%s`` of ``reflect.TypeOf(v)`` for a decoded JSON value."""
    return GO_TYPE.get(type(v), "%!s(<nil>)")


def bad_arg_type(expected: str, actual: Any) -> ValueError:
    """``mergepatch.ErrBadArgType``."""
    return ValueError(f"expected a {expected}, but received a {go_type_name(actual)}")


def type_error(value: Any, go_type: str) -> str:
    return f"json: cannot unmarshal {JSON_KIND[type(value)]} into Go value of type {go_type}"


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


def plain(value: Any) -> Any:
    """Drop the ``_Dups`` wrappers."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def loads_strict(body: bytes) -> tuple[Any, list[str]]:
    loads(body)  # syntax errors and bounds first, with Go's text
    value = _stdlib_loads(body.decode("utf-8", "replace"), object_pairs_hook=_pairs_hook)
    return plain(value), _duplicate_fields(value)
