"""Template values and how Go's ``fmt`` prints them (``%v``, ``Sprint``, ``Sprintf``), for the
Go ``text/template`` subset of :mod:`.template`: maps in key order (``map[a:b]``), slices
(``[a b]``), floats in the shortest ``%g`` form (``1e+06``), ``<no value>``, ``<nil>``."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ...machinery.validation import go_quote


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
