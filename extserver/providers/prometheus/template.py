"""The part of Go's ``text/template`` that prometheus-adapter's templates use, with its
``<<`` / ``>>`` delimiters.

Hand-written because the output and the errors must match Go's ``text/template`` for the
same template text (there is no Python library for Go templates): trim markers ``<<-``
and ``->>``, comments ``<</* */>>``, ``.Field`` chains on structs and maps, ``$`` variables
(``:=``, ``=``), pipelines (``a | b``), parenthesised pipelines, string/raw/number/bool/nil
literals, ``if`` / ``else if`` / ``else`` / ``range`` (slices and maps in sorted key order,
``$k, $v :=``, ``else``, ``break``, ``continue``) / ``with`` / ``end``, and the built-in
functions (``and or not len index slice print printf println eq ne lt le gt ge html js
urlquery``). ``define``/``template``/``block`` are refused: prometheus-adapter parses one
template per field, so they have no use there. Unknown functions are a parse error, unknown
fields an execution error — as in Go.

Data: ``dict`` is a Go map, ``list`` a slice, :class:`Struct` a struct (an unknown field is
"can't evaluate field X in type T"), ``str``/``int``/``float``/``bool``/``None``."""
from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from ...machinery.validation import go_quote

LEFT, RIGHT = "<<", ">>"


class TemplateError(Exception):
    """A parse or execution error, worded as Go's (``template: NAME:LINE: ...``)."""


class _NoValue:
    """An invalid reflect.Value: a missing map key read with ``.key``; prints ``<no value>``."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()


@dataclass(frozen=True, slots=True)
class Struct:
    """A Go struct value: ``type_name`` as Go prints it (``naming.queryTemplateArgs``)."""

    type_name: str
    fields: dict[str, Any]


# =======================================================================================
# Lexer
# =======================================================================================
# item kinds
TEXT, LDELIM, RDELIM, SPACE, FIELD, VARIABLE, IDENT, STRING, RAW, CHAR, NUMBER, PIPE, LPAREN, \
    RPAREN, DECLARE, ASSIGN, COMMA, DOT, EOF, KEYWORD, BOOL, NIL = range(22)
_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
_NUMBER_RE = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|"
                        r"(\d[\d_]*)?\.?\d[\d_]*([eE][+-]?\d+)?|\d[\d_]*\.)(i)?")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(slots=True)
class _Item:
    kind: int
    val: str
    pos: int
    line: int


def _is_space(ch: str) -> bool:
    return ch in " \t\r\n"


def _lex(name: str, text: str) -> list[_Item]:
    items: list[_Item] = []
    i, n = 0, len(text)

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    def err(pos: int, msg: str) -> TemplateError:
        return TemplateError(f"template: {name}:{line_of(pos)}: {msg}")

    while i < n:
        j = text.find(LEFT, i)
        if j < 0:
            items.append(_Item(TEXT, text[i:], i, line_of(i)))
            break
        end_text = j
        trim_left = text.startswith("-", j + 2) and j + 3 < n and _is_space(text[j + 3])
        after = j + 2 + (2 if trim_left else 0)
        if trim_left:
            while end_text > i and _is_space(text[end_text - 1]):
                end_text -= 1
        if end_text > i:
            items.append(_Item(TEXT, text[i:end_text], i, line_of(i)))
        # a comment: <</* ... */>>
        if text.startswith("/*", after):
            close = text.find("*/", after + 2)
            if close < 0:
                raise err(j, "unclosed comment")
            k = close + 2
            trim_right = text.startswith(" -" + RIGHT, k) or text.startswith("\t-" + RIGHT, k) \
                or text.startswith("\n-" + RIGHT, k) or text.startswith("\r-" + RIGHT, k)
            if trim_right:
                k += 1 + 1
            if not text.startswith(RIGHT, k):
                raise err(j, "comment ends before closing delimiter")
            i = k + len(RIGHT)
            if trim_right:
                while i < n and _is_space(text[i]):
                    i += 1
            continue
        items.append(_Item(LDELIM, LEFT, j, line_of(j)))
        i = after
        paren = 0
        while True:
            if i >= n:
                raise err(j, "unclosed action")
            # right delimiter, possibly with a trim marker
            if paren == 0 and text.startswith(RIGHT, i):
                items.append(_Item(RDELIM, RIGHT, i, line_of(i)))
                i += len(RIGHT)
                break
            ch = text[i]
            if _is_space(ch) and text.startswith("-" + RIGHT, i + 1) and paren == 0:
                items.append(_Item(RDELIM, RIGHT, i, line_of(i)))
                i += 1 + 1 + len(RIGHT)
                while i < n and _is_space(text[i]):
                    i += 1
                break
            if _is_space(ch):
                k = i
                while k < n and _is_space(text[k]):
                    k += 1
                items.append(_Item(SPACE, text[i:k], i, line_of(i)))
                i = k
            elif ch == "|":
                items.append(_Item(PIPE, ch, i, line_of(i)))
                i += 1
            elif ch == "(":
                paren += 1
                items.append(_Item(LPAREN, ch, i, line_of(i)))
                i += 1
            elif ch == ")":
                paren -= 1
                if paren < 0:
                    raise err(i, "unexpected right paren")
                items.append(_Item(RPAREN, ch, i, line_of(i)))
                i += 1
            elif ch == ",":
                items.append(_Item(COMMA, ch, i, line_of(i)))
                i += 1
            elif ch == ":":
                if not text.startswith(":=", i):
                    raise err(i, "expected :=")
                items.append(_Item(DECLARE, ":=", i, line_of(i)))
                i += 2
            elif ch == "=":
                items.append(_Item(ASSIGN, "=", i, line_of(i)))
                i += 1
            elif ch == '"':
                k = i + 1
                while True:
                    if k >= n or text[k] == "\n":
                        raise err(i, "unterminated quoted string")
                    if text[k] == "\\":
                        k += 2
                        continue
                    if text[k] == '"':
                        break
                    k += 1
                items.append(_Item(STRING, text[i:k + 1], i, line_of(i)))
                i = k + 1
            elif ch == "`":
                k = text.find("`", i + 1)
                if k < 0:
                    raise err(i, "unterminated raw quoted string")
                items.append(_Item(RAW, text[i:k + 1], i, line_of(i)))
                i = k + 1
            elif ch == "'":
                m = re.compile(r"'(\\.[^']*|[^\\'])'").match(text, i)
                if not m:
                    raise err(i, "unterminated character constant")
                items.append(_Item(CHAR, m.group(0), i, line_of(i)))
                i = m.end()
            elif ch == "$":
                m = _IDENT_RE.match(text, i + 1)
                k = m.end() if m else i + 1
                items.append(_Item(VARIABLE, text[i:k], i, line_of(i)))
                i = k
            elif ch == "." and i + 1 < n and (text[i + 1].isalpha() or text[i + 1] == "_"):
                m = _IDENT_RE.match(text, i + 1)
                assert m is not None
                items.append(_Item(FIELD, text[i:m.end()], i, line_of(i)))
                i = m.end()
            elif ch == "." and not (i + 1 < n and text[i + 1].isdigit()):
                items.append(_Item(DOT, ".", i, line_of(i)))
                i += 1
            elif ch.isdigit() or ch in "+-." and i + 1 < n and (text[i + 1].isdigit() or text[i + 1] == "."):
                m = _NUMBER_RE.match(text, i)
                if not m or not m.group(0):
                    raise err(i, f"bad number syntax: {text[i:i + 1]!r}")
                k = m.end()
                if k < n and (text[k].isalnum() or text[k] == "."):
                    k2 = k
                    while k2 < n and (text[k2].isalnum() or text[k2] in "._"):
                        k2 += 1
                    raise err(i, f'bad number syntax: "{text[i:k2]}"')
                items.append(_Item(NUMBER, m.group(0), i, line_of(i)))
                i = k
            elif ch.isalpha() or ch == "_":
                m = _IDENT_RE.match(text, i)
                assert m is not None
                word = m.group(0)
                kind = KEYWORD if word in _KEYWORDS else BOOL if word in ("true", "false") else \
                    NIL if word == "nil" else IDENT
                items.append(_Item(kind, word, i, line_of(i)))
                i = m.end()
            else:
                raise err(i, f"unrecognized character in action: U+{ord(ch):04X} '{ch}'")
    items.append(_Item(EOF, "", n, line_of(n)))
    return items


# =======================================================================================
# Parse tree
# =======================================================================================
@dataclass(slots=True)
class _Node:
    pos: int
    line: int


@dataclass(slots=True)
class TextNode(_Node):
    text: str


@dataclass(slots=True)
class FieldNode(_Node):
    idents: list[str]  # .A.B -> ["A", "B"]


@dataclass(slots=True)
class VariableNode(_Node):
    idents: list[str]  # $x.A -> ["$x", "A"]


@dataclass(slots=True)
class DotNode(_Node):
    pass


@dataclass(slots=True)
class ChainNode(_Node):
    node: Any
    fields: list[str]


@dataclass(slots=True)
class IdentifierNode(_Node):
    name: str


@dataclass(slots=True)
class LiteralNode(_Node):
    value: Any
    text: str


@dataclass(slots=True)
class CommandNode(_Node):
    args: list[Any]


@dataclass(slots=True)
class PipeNode(_Node):
    decl: list[str]
    is_assign: bool
    cmds: list[CommandNode]


@dataclass(slots=True)
class ActionNode(_Node):
    pipe: PipeNode
    text: str = ""


@dataclass(slots=True)
class ListNode(_Node):
    nodes: list[Any] = field(default_factory=list)


@dataclass(slots=True)
class BranchNode(_Node):
    kind: str  # if, range, with
    pipe: PipeNode
    body: ListNode
    else_body: ListNode | None


@dataclass(slots=True)
class BreakNode(_Node):
    pass


@dataclass(slots=True)
class ContinueNode(_Node):
    pass


BUILTINS = {"and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
            "le", "gt", "ge", "html", "js", "urlquery", "call"}

_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
            '"': '"', "'": "'"}


def _unquote(s: str) -> str:
    """``strconv.Unquote`` for a double-quoted Go string."""
    out, i, body = [], 0, s[1:-1]
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1] if i + 1 < len(body) else ""
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        elif e == "x":
            out.append(chr(int(body[i + 2:i + 4], 16)))
            i += 4
        elif e == "u":
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        elif e == "U":
            out.append(chr(int(body[i + 2:i + 10], 16)))
            i += 10
        elif e.isdigit():
            out.append(chr(int(body[i + 1:i + 4], 8)))
            i += 4
        else:
            raise ValueError("invalid syntax")
    return "".join(out)


def _number(text: str) -> Any:
    t = text.replace("_", "")
    if t.endswith("i"):
        raise ValueError("complex numbers are not supported")
    low = t.lower().lstrip("+-")
    sign = -1 if t.startswith("-") else 1
    if low.startswith("0x"):
        return sign * int(low[2:], 16)
    if low.startswith("0b"):
        return sign * int(low[2:], 2)
    if low.startswith("0o"):
        return sign * int(low[2:], 8)
    if re.fullmatch(r"0[0-7]+", low):
        return sign * int(low, 8)
    if re.fullmatch(r"\d+", low):
        return sign * int(low)
    return float(t)


class _Parser:
    def __init__(self, name: str, text: str):
        self.name = name
        self.text = text
        self.items = _lex(name, text)
        self.i = 0
        self.vars: list[list[str]] = [["$"]]
        self.range_depth = 0  # break/continue are allowed inside a range body, at any depth

    # -- token helpers ----------------------------------------------------------------
    def err(self, item: _Item, msg: str) -> TemplateError:
        return TemplateError(f"template: {self.name}:{item.line}: {msg}")

    def peek(self) -> _Item:
        return self.items[self.i]

    def next(self) -> _Item:
        it = self.items[self.i]
        self.i += 1
        return it

    def next_non_space(self) -> _Item:
        while self.peek().kind == SPACE:
            self.i += 1
        return self.next()

    def peek_non_space(self) -> _Item:
        j = self.i
        while self.items[j].kind == SPACE:
            j += 1
        return self.items[j]

    @staticmethod
    def describe(it: _Item) -> str:
        if it.kind == EOF:
            return "EOF"
        if it.kind == RDELIM:
            return f'"{it.val}"'
        if it.kind == SPACE:
            return "space"
        return f"<{it.val}>" if it.kind in (KEYWORD,) else go_quote(it.val)

    # -- structure --------------------------------------------------------------------
    def parse(self) -> ListNode:
        root = ListNode(0, 1)
        while self.peek().kind != EOF:
            node = self.text_or_action()
            if isinstance(node, tuple):  # an {{end}} / {{else}} at top level
                raise self.err(node[1], f"unexpected {{{{{node[0]}}}}}")
            root.nodes.append(node)
        return root

    def item_list(self, ctx: str) -> tuple[ListNode, str, _Item]:
        """Nodes up to ``end`` or ``else``; returns (list, "end"|"else", keyword item)."""
        lst = ListNode(self.peek().pos, self.peek().line)
        while True:
            if self.peek().kind == EOF:
                raise self.err(self.peek(), f"unexpected EOF")
            node = self.text_or_action(ctx)
            if isinstance(node, tuple):
                return lst, node[0], node[1]
            lst.nodes.append(node)

    def text_or_action(self, ctx: str = ""):
        it = self.next()
        if it.kind == TEXT:
            return TextNode(it.pos, it.line, it.val)
        if it.kind == LDELIM:
            return self.action(ctx)
        raise self.err(it, f"unexpected {self.describe(it)} in input")

    def action(self, ctx: str):
        tok = self.next_non_space()
        if tok.kind == KEYWORD:
            kw = tok.val
            if kw in ("if", "range", "with"):
                return self.branch(kw, tok)
            if kw == "end":
                self.expect_rdelim("end")
                return ("end", tok)
            if kw == "else":
                nxt = self.peek_non_space()
                if nxt.kind == KEYWORD and nxt.val in ("if", "with"):
                    return ("else", tok)  # "else if": the branch parser reads the rest
                self.expect_rdelim("else")
                return ("else", tok)
            if kw in ("break", "continue"):
                if self.range_depth == 0:
                    raise self.err(tok, f"{{{{{kw}}}}} outside {{{{range}}}}")
                self.expect_rdelim(kw)
                return BreakNode(tok.pos, tok.line) if kw == "break" else ContinueNode(tok.pos, tok.line)
            raise self.err(tok, f"{{{{{kw}}}}} is not supported in prometheus-adapter templates")
        self.i -= 1
        start = tok.pos
        pipe = self.pipeline("command", RDELIM)
        return ActionNode(start, tok.line, pipe, self.text[start:self.items[self.i - 1].pos])

    def expect_rdelim(self, ctx: str) -> None:
        it = self.next_non_space()
        if it.kind != RDELIM:
            raise self.err(it, f"unexpected {self.describe(it)} in {ctx}")

    def branch(self, kind: str, tok: _Item) -> BranchNode:
        self.vars.append(list(self.vars[-1]))
        pipe = self.pipeline(kind, RDELIM)
        self.range_depth += kind == "range"
        try:
            body, stop, stop_item = self.item_list(kind)
        finally:
            self.range_depth -= kind == "range"
        else_body = None
        if stop == "else":
            nxt = self.peek_non_space()
            if kind in ("if", "with") and nxt.kind == KEYWORD and nxt.val == kind:
                # {{else if x}} ... is {{else}}{{if x}} ... {{end}}{{end}} sharing the end
                inner_tok = self.next_non_space()
                inner = self.branch(kind, inner_tok)
                else_body = ListNode(inner.pos, inner.line, [inner])
                self.vars.pop()
                return BranchNode(tok.pos, tok.line, kind, pipe, body, else_body)
            else_body, stop2, stop_item2 = self.item_list(kind.replace("range", "") or "else")
            if stop2 != "end":
                raise self.err(stop_item2, "expected end; found {{else}}")
        self.vars.pop()
        return BranchNode(tok.pos, tok.line, kind, pipe, body, else_body)

    def pipeline(self, ctx: str, end: int) -> PipeNode:
        first = self.peek_non_space()
        decl: list[str] = []
        is_assign = False
        # variable declaration: $x := or $k, $v :=
        save = self.i
        v = self.next_non_space()
        if v.kind == VARIABLE:
            nxt = self.peek_non_space()
            if nxt.kind in (DECLARE, ASSIGN):
                self.next_non_space()
                decl = [v.val]
                is_assign = nxt.kind == ASSIGN
            elif nxt.kind == COMMA and ctx == "range":
                self.next_non_space()
                v2 = self.next_non_space()
                if v2.kind != VARIABLE:
                    raise self.err(v2, f"range can only initialize variables")
                op = self.next_non_space()
                if op.kind not in (DECLARE, ASSIGN):
                    raise self.err(op, f"unexpected {self.describe(op)} in range")
                decl = [v.val, v2.val]
                is_assign = op.kind == ASSIGN
            else:
                self.i = save
        else:
            self.i = save
        if decl and not is_assign:
            self.vars[-1].extend(decl)
        elif decl:
            for name in decl:
                if name not in self.vars[-1]:
                    raise self.err(first, f"undefined variable: {name}")
        pipe = PipeNode(first.pos, first.line, decl, is_assign, [])
        while True:
            it = self.peek_non_space()
            if it.kind == end:
                self.next_non_space()
                if not pipe.cmds:
                    raise self.err(it, f"missing value for {ctx}")
                for c in pipe.cmds[1:]:
                    if isinstance(c.args[0], LiteralNode):
                        raise self.err(it, f"non executable command in pipeline stage {pipe.cmds.index(c) + 1}")
                return pipe
            if it.kind in (BOOL, CHAR, DOT, FIELD, IDENT, NUMBER, NIL, RAW, STRING, VARIABLE, LPAREN):
                pipe.cmds.append(self.command(end))
            else:
                raise self.err(it, f"unexpected {self.describe(it)} in {ctx}")

    def command(self, end: int) -> CommandNode:
        first = self.peek_non_space()
        cmd = CommandNode(first.pos, first.line, [])
        while True:
            while self.peek().kind == SPACE:
                self.next()
            op = self.operand()
            if op is not None:
                cmd.args.append(op)
            it = self.peek()
            if it.kind == SPACE:
                nxt = self.peek_non_space()
                if nxt.kind in (end, PIPE):
                    self.next_non_space() if nxt.kind == PIPE else None
                    if nxt.kind == PIPE and not cmd.args:
                        raise self.err(nxt, "missing command")
                    return cmd
                continue
            if it.kind == end or it.kind == RPAREN and end == RPAREN:
                return cmd
            if it.kind == PIPE:
                self.next()
                return cmd
            if op is None:
                raise self.err(it, f"unexpected {self.describe(it)} in operand")
            raise self.err(it, f"unexpected {self.describe(it)} in operand")

    def operand(self):
        node = self.term()
        if node is None:
            return None
        if self.peek().kind == FIELD:
            fields = []
            while self.peek().kind == FIELD:
                fields.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                node = FieldNode(node.pos, node.line, node.idents + fields)
            elif isinstance(node, VariableNode):
                node = VariableNode(node.pos, node.line, node.idents + fields)
            elif isinstance(node, (LiteralNode, DotNode)) and not isinstance(node, ChainNode):
                raise self.err(self.items[self.i - 1], f"unexpected . after term {node_text(node)!r}")
            else:
                node = ChainNode(node.pos, node.line, node, fields)
        return node

    def term(self):
        it = self.next()
        k = it.kind
        if k == IDENT:
            if it.val not in BUILTINS:
                raise self.err(it, f'function "{it.val}" not defined')
            return IdentifierNode(it.pos, it.line, it.val)
        if k == DOT:
            return DotNode(it.pos, it.line)
        if k == NIL:
            return LiteralNode(it.pos, it.line, None, "nil")
        if k == VARIABLE:
            if it.val not in self.vars[-1]:
                raise self.err(it, f"undefined variable \"{it.val}\"")
            return VariableNode(it.pos, it.line, [it.val])
        if k == FIELD:
            return FieldNode(it.pos, it.line, [it.val[1:]])
        if k == BOOL:
            return LiteralNode(it.pos, it.line, it.val == "true", it.val)
        if k == NUMBER:
            try:
                return LiteralNode(it.pos, it.line, _number(it.val), it.val)
            except ValueError:
                raise self.err(it, f"illegal number syntax: {go_quote(it.val)}") from None
        if k == CHAR:
            body = it.val[1:-1]
            ch = _unquote('"' + body + '"') if body.startswith("\\") else body
            return LiteralNode(it.pos, it.line, ord(ch), it.val)
        if k == STRING:
            try:
                return LiteralNode(it.pos, it.line, _unquote(it.val), it.val)
            except (ValueError, IndexError):
                raise self.err(it, "invalid syntax") from None
        if k == RAW:
            return LiteralNode(it.pos, it.line, it.val[1:-1], it.val)
        if k == LPAREN:
            pipe = self.pipeline("parenthesized pipeline", RPAREN)
            return pipe
        self.i -= 1
        return None


def node_text(n: Any) -> str:
    if isinstance(n, FieldNode):
        return "." + ".".join(n.idents)
    if isinstance(n, VariableNode):
        return ".".join(n.idents)
    if isinstance(n, DotNode):
        return "."
    if isinstance(n, LiteralNode):
        return n.text
    if isinstance(n, IdentifierNode):
        return n.name
    if isinstance(n, PipeNode):
        return "(" + " | ".join(" ".join(node_text(a) for a in c.args) for c in n.cmds) + ")"
    if isinstance(n, ChainNode):
        return node_text(n.node) + "".join("." + f for f in n.fields)
    return "?"


# =======================================================================================
# Values as Go's fmt prints them
# =======================================================================================
def _go_float(f: float) -> str:
    """``strconv.FormatFloat(f, 'g', -1, 64)`` as ``%v`` prints a float64."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    r = repr(f)
    mant, _, exp = r.partition("e")
    digits = mant.lstrip("-").replace(".", "").lstrip("0") or "0"
    e10 = int(exp) if exp else 0
    # decimal exponent of the first significant digit
    m = mant.lstrip("-")
    if "." in m:
        ip, fp = m.split(".")
    else:
        ip, fp = m, ""
    if ip.strip("0"):
        x = len(ip.lstrip("0")) - 1 + e10
    else:
        x = -(len(fp) - len(fp.lstrip("0"))) - 1 + e10
    digits = digits.rstrip("0") or "0"
    sign = "-" if f < 0 else ""
    if x < -4 or x >= 6:  # shortest %g: Go decides the form with precision 6
        d = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{d}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if x >= len(digits) - 1:
        s = digits + "0" * (x - len(digits) + 1)
    elif x >= 0:
        s = digits[:x + 1] + "." + digits[x + 1:]
    else:
        s = "0." + "0" * (-x - 1) + digits
    return sign + s


def go_print(v: Any) -> str:
    """``fmt.Sprint(v)`` for the value kinds templates hold."""
    if v is NO_VALUE:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, dict):
        return "map[" + " ".join(f"{go_print(k)}:{go_print(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_print(x) for x in v) + "]"
    if isinstance(v, Struct):
        return "{" + " ".join(go_print(x) for x in v.fields.values()) + "}"
    return str(v)


def _truth(v: Any) -> bool:
    """``template.IsTrue``: the zero value of its type is false."""
    if v is NO_VALUE or v is None:
        return False
    if isinstance(v, Struct):
        return True
    return bool(v)


def _sprint(args: list[Any]) -> str:
    out = []
    for i, a in enumerate(args):
        if i > 0 and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_print(a))
    return "".join(out)


_VERB_RE = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*))?([a-zA-Z%])")


def _sprintf(fmt: str, args: list[Any]) -> str:
    out, ai, pos = [], 0, 0
    for m in _VERB_RE.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, verb = m.group(1), m.group(2) or "", m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if ai >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[ai]
        ai += 1
        if verb == "v":
            s = go_print(a)
        elif verb == "s":
            s = go_print(a) if isinstance(a, (str, list, dict)) or a is None else f"%!s({_go_type(a)}={go_print(a)})"
        elif verb == "q":
            s = go_quote(a) if isinstance(a, str) else f"'{chr(a)}'" if isinstance(a, int) else go_print(a)
        elif verb == "d" and isinstance(a, int) and not isinstance(a, bool):
            s = str(a)
        elif verb in "xX" and isinstance(a, (int, str)) and not isinstance(a, bool):
            s = format(a, verb) if isinstance(a, int) else a.encode().hex()
            s = s.upper() if verb == "X" else s
        elif verb in "feEgG" and isinstance(a, (int, float)) and not isinstance(a, bool):
            s = f"%{'.' + prec if prec else ''}{verb}" % float(a) if verb in "fFeE" else _go_float(float(a))
        elif verb == "t" and isinstance(a, bool):
            s = go_print(a)
        else:
            s = f"%!{verb}({_go_type(a)}={go_print(a)})"
        if width and width != "*":
            s = s.ljust(int(width)) if "-" in flags else s.rjust(int(width), "0" if "0" in flags and verb in "dfeg" else " ")
        out.append(s)
    out.append(fmt[pos:])
    if ai < len(args):
        out.append("%!(EXTRA " + ", ".join(f"{_go_type(a)}={go_print(a)}" for a in args[ai:]) + ")")
    return "".join(out)


def _go_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "map[string]string"
    if isinstance(v, list):
        return "[]string"
    if isinstance(v, Struct):
        return v.type_name
    return "<nil>"


def _html(s: str) -> str:
    return (s.replace("\0", "\uFFFD").replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;")
            .replace(">", "&gt;").replace('"', "&#34;"))


def _js(s: str) -> str:
    rep = {"\\": "\\\\", "'": "\\'", '"': "\\u0022", "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
           "=": "\\u003D", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return "".join(rep.get(c, c) for c in s)


# =======================================================================================
# Execution
# =======================================================================================
class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Exec:
    def __init__(self, tmpl: "Template", data: Any):
        self.t = tmpl
        self.out: list[str] = []
        self.vars: list[tuple[str, Any]] = [("$", data)]

    def err(self, node: _Node, msg: str) -> TemplateError:
        col = node.pos - (self.t.text.rfind("\n", 0, node.pos) + 1)  # 0-based, as Go's ErrorContext
        return TemplateError(f'template: {self.t.name}:{node.line}:{col}: executing "{self.t.name}" '
                             f"at <{node_text(node)}>: {msg}")

    def var(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise TemplateError(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return

    def walk(self, dot: Any, node: Any) -> None:
        if isinstance(node, ListNode):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, TextNode):
            self.out.append(node.text)
        elif isinstance(node, ActionNode):
            val = self.pipe(dot, node.pipe)
            if not node.pipe.decl:
                self.out.append(go_print(val))
        elif isinstance(node, BranchNode):
            mark = len(self.vars)
            try:
                if node.kind == "range":
                    self.range(dot, node)
                else:
                    val = self.pipe(dot, node.pipe)
                    if _truth(val):
                        self.walk(val if node.kind == "with" else dot, node.body)
                    elif node.else_body is not None:
                        self.walk(dot, node.else_body)
            finally:
                del self.vars[mark:]
        elif isinstance(node, BreakNode):
            raise _Break()
        elif isinstance(node, ContinueNode):
            raise _Continue()

    def range(self, dot: Any, node: BranchNode) -> None:
        pipe = node.pipe
        val = self.eval_pipe_value(dot, pipe)
        if isinstance(val, dict):
            pairs = [(k, val[k]) for k in sorted(val)]
        elif isinstance(val, (list, tuple)):
            pairs = list(enumerate(val))
        elif isinstance(val, int) and not isinstance(val, bool):
            pairs = [(i, i) for i in range(val)]
        elif val is None or val is NO_VALUE:
            pairs = []
        else:
            raise self.err(node, f"range can't iterate over {go_print(val)}")
        if not pairs:
            if node.else_body is not None:
                self.walk(dot, node.else_body)
            return
        mark = len(self.vars)
        for k, v in pairs:
            del self.vars[mark:]
            if len(pipe.decl) == 1:
                self.bind(pipe, [v])
            elif len(pipe.decl) == 2:
                self.bind(pipe, [k, v])
            try:
                self.walk(v, node.body)
            except _Continue:
                continue
            except _Break:
                break

    def bind(self, pipe: PipeNode, values: list[Any]) -> None:
        for name, v in zip(pipe.decl, values):
            if pipe.is_assign:
                self.set_var(name, v)
            else:
                self.vars.append((name, v))

    def eval_pipe_value(self, dot: Any, pipe: PipeNode) -> Any:
        val = None
        for cmd in pipe.cmds:
            val = self.command(dot, cmd, val, final_given=cmd is not pipe.cmds[0])
        return val

    def pipe(self, dot: Any, pipe: PipeNode) -> Any:
        val = self.eval_pipe_value(dot, pipe)
        if pipe.decl:
            self.bind(pipe, [val])
        return val

    def command(self, dot: Any, cmd: CommandNode, final: Any, final_given: bool) -> Any:
        first = cmd.args[0]
        if isinstance(first, IdentifierNode):
            return self.call(dot, first, cmd.args[1:], final, final_given)
        if len(cmd.args) > 1 or final_given:
            if isinstance(first, (FieldNode, ChainNode, VariableNode)):
                raise self.err(first, f"can't give argument to non-function {node_text(first)}")
            raise self.err(first, f"can't give argument to non-function {node_text(first)}")
        return self.arg(dot, first)

    def arg(self, dot: Any, node: Any) -> Any:
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, LiteralNode):
            return node.value
        if isinstance(node, FieldNode):
            return self.fields(node, dot, node.idents)
        if isinstance(node, VariableNode):
            return self.fields(node, self.var(node.idents[0]), node.idents[1:])
        if isinstance(node, PipeNode):
            mark = len(self.vars)
            try:
                return self.pipe(dot, node)
            finally:
                del self.vars[mark:]
        if isinstance(node, ChainNode):
            return self.fields(node, self.arg(dot, node.node), node.fields)
        if isinstance(node, IdentifierNode):
            return self.call(dot, node, [], None, False)
        raise self.err(node, "can't evaluate")

    def fields(self, node: _Node, receiver: Any, names: list[str]) -> Any:
        for name in names:
            if isinstance(receiver, Struct):
                if name not in receiver.fields:
                    raise self.err(node, f"can't evaluate field {name} in type {receiver.type_name}")
                receiver = receiver.fields[name]
            elif isinstance(receiver, dict):
                receiver = receiver.get(name, NO_VALUE)
            elif receiver is None or receiver is NO_VALUE:
                raise self.err(node, f"nil pointer evaluating interface {{}}.{name}")
            else:
                raise self.err(node, f"can't evaluate field {name} in type {_go_type(receiver)}")
        return receiver

    def call(self, dot: Any, ident: IdentifierNode, arg_nodes: list[Any], final: Any, final_given: bool) -> Any:
        name = ident.name
        if name in ("and", "or"):  # short-circuit, as Go >= 1.18
            nodes = list(arg_nodes)
            vals_iter = [lambda n=n: self.arg(dot, n) for n in nodes]
            if final_given:
                vals_iter.append(lambda: final)
            if not vals_iter:
                raise self.err(ident, f"wrong number of args for {name}: want at least 1 got 0")
            v = None
            for get in vals_iter:
                v = get()
                if (name == "and") != _truth(v):
                    return v
            return v
        args = [self.arg(dot, n) for n in arg_nodes]
        if final_given:
            args.append(final)
        try:
            return self.builtin(name, args)
        except TemplateError:
            raise
        except _ArgError as e:
            raise self.err(ident, f"error calling {name}: {e}") if e.calling else self.err(ident, str(e)) from None

    def builtin(self, name: str, args: list[Any]) -> Any:
        def want(n: int) -> None:
            if len(args) != n:
                raise _ArgError(f"wrong number of args for {name}: want {n} got {len(args)}", calling=False)

        if name == "not":
            want(1)
            return not _truth(args[0])
        if name == "len":
            want(1)
            a = args[0]
            if isinstance(a, str):
                return len(a.encode())
            if isinstance(a, (dict, list)):
                return len(a)
            raise _ArgError(f"len of type {_go_type(a)}")
        if name == "index":
            if not args:
                raise _ArgError("wrong number of args for index: want at least 1 got 0", calling=False)
            item = args[0]
            for ix in args[1:]:
                if isinstance(item, dict):
                    if not isinstance(ix, str):
                        raise _ArgError(f"value has type {_go_type(ix)}; should be string")
                    item = item.get(ix, "")
                elif isinstance(item, (list, str)):
                    if not isinstance(ix, int) or isinstance(ix, bool):
                        raise _ArgError(f"cannot index slice/array with type {_go_type(ix)}")
                    seq = item.encode() if isinstance(item, str) else item
                    if not 0 <= ix < len(seq):
                        raise _ArgError(f"index out of range: {ix}")
                    item = seq[ix]
                elif item is None or item is NO_VALUE:
                    raise _ArgError("index of untyped nil")
                else:
                    raise _ArgError(f"can't index item of type {_go_type(item)}")
            return item
        if name == "slice":
            if not args:
                raise _ArgError("wrong number of args for slice: want at least 1 got 0", calling=False)
            item, ix = args[0], args[1:]
            if len(ix) > 2 or not isinstance(item, (str, list)):
                raise _ArgError(f"can't slice item of type {_go_type(item)}")
            lo = ix[0] if ix else 0
            hi = ix[1] if len(ix) > 1 else len(item)
            if not 0 <= lo <= hi <= len(item):
                raise _ArgError(f"invalid slice index: {lo} > {hi}" if lo > hi else f"index out of range: {hi}")
            return item[lo:hi]
        if name == "print":
            return _sprint(args)
        if name == "println":
            return " ".join(go_print(a) for a in args) + "\n"
        if name == "printf":
            if not args or not isinstance(args[0], str):
                raise _ArgError("wrong number of args for printf: want at least 1 got 0", calling=False)
            return _sprintf(args[0], args[1:])
        if name in ("eq", "ne", "lt", "le", "gt", "ge"):
            if name == "eq":
                if not args:
                    raise _ArgError("missing argument for comparison")
                return any(self.compare(args[0], b) == 0 for b in args[1:])
            want(2)
            c = self.compare(args[0], args[1], ordered=name != "ne")
            return {"ne": c != 0, "lt": c < 0, "le": c <= 0, "gt": c > 0, "ge": c >= 0}[name]
        if name == "html":
            return _html(_sprint(args))
        if name == "js":
            return _js(_sprint(args))
        if name == "urlquery":
            return urllib.parse.quote_plus(_sprint(args), safe="")
        if name == "call":
            raise _ArgError("non-function of type " + (_go_type(args[0]) if args else "<nil>"))
        raise _ArgError(f'function "{name}" not defined', calling=False)

    @staticmethod
    def compare(a: Any, b: Any, ordered: bool = False) -> int:
        def kind(x: Any) -> str:
            if isinstance(x, bool):
                return "bool"
            if isinstance(x, int):
                return "int"
            if isinstance(x, float):
                return "float"
            if isinstance(x, str):
                return "string"
            return "other"

        ka, kb = kind(a), kind(b)
        if ka == "other" or kb == "other":
            raise _ArgError("invalid type for comparison")
        if ka != kb:
            raise _ArgError("incompatible types for comparison")
        if ordered and ka == "bool":
            raise _ArgError("invalid type for comparison")
        return (a > b) - (a < b)


class _ArgError(Exception):
    def __init__(self, msg: str, *, calling: bool = True):
        super().__init__(msg)
        self.calling = calling


class Template:
    """A parsed template: ``Template.parse(name, text)`` then ``execute(data)``."""

    def __init__(self, name: str, text: str, root: ListNode):
        self.name = name
        self.text = text
        self.root = root

    @classmethod
    def parse(cls, name: str, text: str) -> "Template":
        return cls(name, text, _Parser(name, text).parse())

    def execute(self, data: Any) -> str:
        ex = _Exec(self, data)
        try:
            ex.walk(data, self.root)
        except (_Break, _Continue):  # pragma: no cover - the parser refuses them outside range
            pass
        return "".join(ex.out)
