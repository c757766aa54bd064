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

import urllib.parse
from typing import Any

from .template_fmt import NO_VALUE, Struct, _go_type, _html, _js, _sprint, _sprintf, _truth, go_print
from .template_parse import (ActionNode, BranchNode, BreakNode, ChainNode, CommandNode, ContinueNode, DotNode,
                             FieldNode, IdentifierNode, ListNode, LiteralNode, PipeNode, TemplateError, TextNode,
                             VariableNode, _Node, _Parser, node_text)

__all__ = ["NO_VALUE", "Struct", "Template", "TemplateError", "go_print"]

_BASIC = ("bool", "int", "float64", "string")  # the kinds eq/lt/... compare


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
        ka, kb = _go_type(a), _go_type(b)
        if ka not in _BASIC or kb not in _BASIC:
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
