"""The parsing half of the Go ``text/template`` subset (see :mod:`.template`): a lexer for
the ``<<`` ``>>`` delimiters and a parser to the node tree, with Go's error texts. Hand-written
to match Go's ``text/template/parse`` for the constructs prometheus-adapter's templates use."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ...machinery.validation import go_quote

LEFT, RIGHT = "<<", ">>"


class TemplateError(Exception):
    """A parse or execution error, worded as Go's (``template: NAME:LINE: ...``)."""


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

    def item_list(self) -> tuple[ListNode, str, _Item]:
        """Nodes up to ``end`` or ``else``; returns (list, "end"|"else", keyword item)."""
        lst = ListNode(self.peek().pos, self.peek().line)
        while True:
            if self.peek().kind == EOF:
                raise self.err(self.peek(), "unexpected EOF")
            node = self.text_or_action()
            if isinstance(node, tuple):
                return lst, node[0], node[1]
            lst.nodes.append(node)

    def text_or_action(self):
        it = self.next()
        if it.kind == TEXT:
            return TextNode(it.pos, it.line, it.val)
        if it.kind == LDELIM:
            return self.action()
        raise self.err(it, f"unexpected {self.describe(it)} in input")

    def action(self):
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
            body, stop, stop_item = self.item_list()
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
            else_body, stop2, stop_item2 = self.item_list()
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
                    raise self.err(v2, "range can only initialize variables")
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
