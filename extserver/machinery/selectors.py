"""Label and field selectors, parsed and matched as ``k8s.io/apimachinery`` does.

``LabelSelector`` follows ``pkg/labels/selector.go`` (lexer, parser, ``NewRequirement``
validation, ``String()``), ``FieldSelector`` follows ``pkg/fields/selector.go`` (term
splitting, ``\\`` escapes). Parse failures raise ``ValueError`` whose text is kube's error
string; kube's list/watch handlers answer it as ``400 BadRequest`` with that text as the
message, unchanged.
"""
from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .validation import go_quote, is_qualified_name, is_valid_label_value

# selection.Operator values
IN, NOT_IN = "in", "notin"
EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "=", "==", "!="
EXISTS, DOES_NOT_EXIST = "exists", "!"
GREATER_THAN, LESS_THAN = "gt", "lt"

_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_INT64_RE = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _parse_int64(s: str) -> int | None:
    """``strconv.ParseInt(s, 10, 64)``: None when it would fail."""
    if not _INT64_RE.fullmatch(s):
        return None
    v = int(s)
    return v if _INT64_MIN <= v <= _INT64_MAX else None


def _invalid(path: str, value: str | list[str] | None, detail: str) -> str:
    """``field.Invalid(path, value, detail).Error()`` for the values selectors report."""
    if isinstance(value, str):
        shown = go_quote(value)
    else:  # a []string, json-marshalled as Go does (nil -> null)
        shown = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        shown = shown.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f"{path}: Invalid value: {shown}: {detail}"


def _aggregate(msgs: list[str]) -> str:
    """``field.ErrorList.ToAggregate().Error()``: deduplicated, bracketed when several."""
    msgs = list(dict.fromkeys(msgs))
    return msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"


# =======================================================================================
# Label selectors
# =======================================================================================

@dataclass(frozen=True, slots=True)
class Requirement:
    """One label requirement (``labels.Requirement``); build it with :meth:`new`."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    @classmethod
    def new(cls, key: str, operator: str, values: Iterable[str] | None = ()) -> Requirement:
        """``labels.NewRequirement``: validate and build; ``ValueError`` with kube's text.
        ``values=None`` stands for a Go nil slice (rendered ``null`` in messages)."""
        vals = None if values is None else list(values)
        items = vals or []
        errs: list[str] = []
        key_msgs = is_qualified_name(key)
        if key_msgs:
            errs.append(_invalid("key", key, "; ".join(key_msgs)))
        if operator in (IN, NOT_IN):
            if not items:
                errs.append(_invalid("values", vals, "for 'in', 'notin' operators, values set can't be empty"))
        elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
            if len(items) != 1:
                errs.append(_invalid("values", vals, "exact-match compatibility requires one single value"))
        elif operator in (EXISTS, DOES_NOT_EXIST):
            if items:
                errs.append(_invalid("values", vals, "values set must be empty for exists and does not exist"))
        elif operator in (GREATER_THAN, LESS_THAN):
            if len(items) != 1:
                errs.append(_invalid("values", vals, "for 'Gt', 'Lt' operators, exactly one value is required"))
            errs.extend(_invalid(f"values[{i}]", v, "for 'Gt', 'Lt' operators, the value must be an integer")
                        for i, v in enumerate(items) if _parse_int64(v) is None)
        else:
            raise ValueError(f"{go_quote(operator)} is not a valid label selector operator")
        for i, v in enumerate(items):
            value_msgs = is_valid_label_value(v)
            if value_msgs:
                errs.append(_invalid(f"values[{i}][{key}]", v, "; ".join(value_msgs)))
        if errs:
            raise ValueError(_aggregate(errs))
        return cls(key, operator, tuple(items))

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        # GREATER_THAN / LESS_THAN
        if self.key not in labels or len(self.values) != 1:
            return False
        have, want = _parse_int64(labels[self.key]), _parse_int64(self.values[0])
        if have is None or want is None:
            return False
        return have > want if op == GREATER_THAN else have < want

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        vals = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({vals})"
        sym = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{sym}{vals}"


class LabelSelector:
    """A conjunction of :class:`Requirement` (``labels.Selector``)."""

    __slots__ = ("requirements", "_nothing")

    def __init__(self, requirements: Iterable[Requirement] = (), *, _nothing: bool = False):
        # Requirements are kept sorted by key, as Go's Add/parse do.
        self.requirements: tuple[Requirement, ...] = tuple(sorted(requirements, key=lambda r: r.key))
        self._nothing = _nothing

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls()

    @classmethod
    def nothing(cls) -> LabelSelector:
        """``labels.Nothing()``: matches no object (a nil ``metav1.LabelSelector``)."""
        return cls(_nothing=True)

    @classmethod
    def parse(cls, s: str) -> LabelSelector:
        """``labels.Parse``; raises ``ValueError`` with kube's message."""
        return cls(_Parser(s).parse())

    @classmethod
    def from_set(cls, labels: Mapping[str, str]) -> LabelSelector:
        """``labels.SelectorFromSet`` (no validation): ``k=v`` for every pair."""
        return cls(Requirement(k, EQUALS, (v,)) for k, v in labels.items())

    @classmethod
    def from_label_selector_dict(cls, d: Mapping[str, Any] | None) -> LabelSelector:
        """``metav1.LabelSelectorAsSelector`` for a wire-form ``LabelSelector`` object:
        ``None`` matches nothing, ``{}`` matches everything."""
        if d is None:
            return cls.nothing()
        match_labels = d.get("matchLabels") or {}
        exprs = d.get("matchExpressions") or []
        if not match_labels and not exprs:
            return cls.everything()
        reqs = [Requirement.new(k, EQUALS, [v]) for k, v in match_labels.items()]
        ops = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}
        for expr in exprs:
            op = expr.get("operator") or ""
            if op not in ops:
                raise ValueError(f"{go_quote(op)} is not a valid label selector operator")
            # Go copies the values with append([]string(nil), ...): none is a nil slice.
            reqs.append(Requirement.new(expr.get("key") or "", ops[op], expr.get("values") or None))
        return cls(reqs)

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (``Nothing()`` is not empty)."""
        return not self._nothing and not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self._nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def requires_exact_match(self, key: str) -> str | None:
        """``RequiresExactMatch``: the single value ``key`` must have, if the selector says so."""
        for r in self.requirements:
            if r.key == key:
                if r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1:
                    return r.values[0]
                return None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return f"LabelSelector({str(self)!r})" if not self._nothing else "LabelSelector.nothing()"


# --- lexer / parser (labels.Lexer, labels.Parser) ----------------------------------------

_END, _CLOSE_PAR, _COMMA, _NOT, _DOUBLE_EQ, _EQ, _GT, _ID, _IN, _LT, _NEQ, _NOTIN, _OPEN_PAR = range(13)
_STRING_TO_TOKEN = {")": _CLOSE_PAR, ",": _COMMA, "!": _NOT, "==": _DOUBLE_EQ, "=": _EQ, ">": _GT,
                    "in": _IN, "<": _LT, "!=": _NEQ, "notin": _NOTIN, "(": _OPEN_PAR}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_TOKEN_TO_OPERATOR = {_IN: IN, _NOTIN: NOT_IN, _EQ: EQUALS, _DOUBLE_EQ: DOUBLE_EQUALS,
                      _NEQ: NOT_EQUALS, _GT: GREATER_THAN, _LT: LESS_THAN}


def _lex(s: str) -> list[tuple[int, str]]:
    """Tokenize like Go's lexer."""
    items: list[tuple[int, str]] = []
    pos, n = 0, len(s)
    while True:
        while pos < n and s[pos] in _WHITESPACE:
            pos += 1
        if pos >= n:
            items.append((_END, ""))
            return items
        if s[pos] in _SPECIAL:
            # Every single special symbol is a token; extend while the run still is one
            # ("!=", "=="), as Go's scanSpecialSymbol does.
            buf = s[pos]
            pos += 1
            while pos < n and buf + s[pos] in _STRING_TO_TOKEN:
                buf += s[pos]
                pos += 1
            items.append((_STRING_TO_TOKEN[buf], buf))
        else:
            start = pos
            while pos < n and s[pos] not in _SPECIAL and s[pos] not in _WHITESPACE:
                pos += 1
            word = s[start:pos]
            items.append((_STRING_TO_TOKEN.get(word, _ID), word))


class _Parser:
    def __init__(self, s: str):
        self.items = _lex(s)
        self.pos = 0

    def _peek(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.items[self.pos]
        if values and tok in (_IN, _NOTIN):
            tok = _ID
        return tok, lit

    def _next(self, values: bool = True) -> tuple[int, str]:
        item = self._peek(values)
        self.pos += 1
        return item

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self._peek()
            if tok in (_ID, _NOT):
                try:
                    reqs.append(self._requirement())
                except ValueError as e:
                    raise ValueError(f"unable to parse requirement: {e}") from None
                tok, lit = self._next()
                if tok == _END:
                    return reqs
                if tok != _COMMA:
                    raise ValueError(f"found '{lit}', expected: ',' or 'end of string'")
                tok2, lit2 = self._peek()
                if tok2 not in (_ID, _NOT):
                    raise ValueError(f"found '{lit2}', expected: identifier after ','")
            elif tok == _END:
                return reqs
            else:
                raise ValueError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def _requirement(self) -> Requirement:
        operator = ""
        tok, lit = self._next()
        if tok == _NOT:
            operator = DOES_NOT_EXIST
            tok, lit = self._next()
        if tok != _ID:
            raise ValueError(f"found '{lit}', expected: identifier")
        key_errs = is_qualified_name(lit)
        if key_errs:
            raise ValueError(_invalid("<nil>", lit, "; ".join(key_errs)))
        key = lit
        if operator == DOES_NOT_EXIST or self._peek()[0] in (_END, _COMMA):
            # "!key" ends here whatever follows (the caller then wants ',' or the end).
            return Requirement.new(key, operator or EXISTS, [])
        tok, lit = self._next(values=False)
        op = _TOKEN_TO_OPERATOR.get(tok)
        if op is None:
            raise ValueError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        values = self._values() if op in (IN, NOT_IN) else self._exact_value()
        return Requirement.new(key, op, sorted(values))

    def _values(self) -> set[str]:
        tok, lit = self._next()
        if tok != _OPEN_PAR:
            raise ValueError(f"found '{lit}' expected: '('")
        tok, lit = self._peek()
        if tok in (_ID, _COMMA):
            values = self._identifiers_list()
            self._next()  # the ')' that ended the list
            return values
        if tok == _CLOSE_PAR:
            self._next()
            return {""}
        raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")

    def _identifiers_list(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self._next()
            if tok == _ID:
                values.add(lit)
                tok2, lit2 = self._peek()
                if tok2 == _COMMA:
                    continue
                if tok2 == _CLOSE_PAR:
                    return values
                raise ValueError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _COMMA:
                if not values:
                    values.add("")  # "(,"
                tok2 = self._peek()[0]
                if tok2 in (_CLOSE_PAR, _COMMA):
                    values.add("")  # ",)" and ",,"
                    if tok2 == _CLOSE_PAR:
                        return values
            else:
                raise ValueError(f"found '{lit}', expected: ',', or identifier")

    def _exact_value(self) -> set[str]:
        if self._peek()[0] in (_END, _COMMA):
            return {""}
        tok, lit = self._next()
        if tok == _ID:
            return {lit}
        raise ValueError(f"found '{lit}', expected: identifier")


# =======================================================================================
# Field selectors
# =======================================================================================

DEFAULT_FIELD_SELECTOR_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


def escape_field_value(value: str) -> str:
    """``fields.EscapeValue``: backslash-escape ``\\``, ``,`` and ``=``."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_field_value(s: str) -> str:
    """``fields.UnescapeValue``; ``ValueError`` with kube's message on a bad escape."""
    if not any(c in s for c in "\\,="):
        return s
    out: list[str] = []
    in_slash = False
    for c in s:
        if in_slash:
            if c not in "\\,=":
                raise ValueError(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            # Go prints the rune with %v: its code point.
            raise ValueError(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise ValueError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(s: str) -> list[str]:
    """Split on unescaped commas, keeping escapes in the terms."""
    if not s:
        return []
    terms, start, in_slash = [], 0, False
    for i, c in enumerate(s):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(s[start:i])
            start = i + 1
    terms.append(s[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """First occurrence of ``!=``, ``==`` or ``=`` (in that preference at each position)."""
    for i in range(len(term)):
        for op in (NOT_EQUALS, DOUBLE_EQUALS, EQUALS):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """A conjunction of ``field=value`` / ``field!=value`` terms (``fields.Selector``)."""

    requirements: tuple[tuple[str, str, str], ...] = ()
    """(field, operator, value) with operator ``=`` (also for ``==``) or ``!=``, sorted as kube."""

    @classmethod
    def everything(cls) -> FieldSelector:
        return cls()

    @classmethod
    def parse(cls, s: str) -> FieldSelector:
        """``fields.ParseSelector``; raises ``ValueError`` with kube's message."""
        reqs = []
        for part in sorted(_split_terms(s)):
            if not part:
                continue
            split = _split_term(part)
            if split is None:
                raise ValueError(f"invalid selector: '{s}'; can't understand '{part}'")
            lhs, op, rhs = split
            reqs.append((lhs, NOT_EQUALS if op == NOT_EQUALS else EQUALS, unescape_field_value(rhs)))
        return cls(tuple(reqs))

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, fields: Mapping[str, str]) -> bool:
        """A missing field reads as ``""``, as ``fields.Set.Get`` does."""
        for field, op, value in self.requirements:
            if (fields.get(field, "") == value) != (op == EQUALS):
                return False
        return True

    def single_value(self, field: str) -> str | None:
        """``RequiresExactMatch``: the value ``field=`` pins (e.g. ``metadata.name`` for a get)."""
        for f, op, value in self.requirements:
            if f == field and op == EQUALS:
                return value
        return None

    def check_supported(self, supported: Collection[str] | None = None) -> None:
        """Reject fields the kind cannot select on, with kube's message for the first one.

        ``None`` is kube's default conversion (``runtime.DefaultMetaV1FieldSelectorConversion``,
        used when a kind registers no field-label conversion, e.g. sample-apiserver):
        only ``metadata.name`` and ``metadata.namespace``, message
        ``"x" is not a known field selector: only "metadata.name", "metadata.namespace"``.
        A set is a kind's declared fields, checked as the usual conversion funcs (and the
        CRD handler) do: ``field label not supported: x``. Either is answered as 400.
        """
        for field, _, _ in self.requirements:
            if supported is None:
                if field not in DEFAULT_FIELD_SELECTOR_FIELDS:
                    raise ValueError(f"{go_quote(field)} is not a known field selector: "
                                     'only "metadata.name", "metadata.namespace"')
            elif field not in supported:
                raise ValueError(f"field label not supported: {field}")

    def __str__(self) -> str:
        return ",".join(f"{f}{op}{escape_field_value(v)}" for f, op, v in self.requirements)
