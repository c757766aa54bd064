"""``resource.Quantity`` as k8s.io/apimachinery defines it (parse, canonical form, arithmetic).

Hand-written because the wire form must match Go's ``Quantity.String()`` to the character
(``kubectl top``, the HPA and diffing clients compare these strings). The rules, from
apimachinery's ``quantity.go``, ``suffix.go`` and ``amount.go``:

* a value is ``mantissa * 10**exponent`` held exactly (Go: int64Amount / inf.Dec; Python's
  ints are both); parsing keeps precision down to nano and rounds anything finer *away from
  zero* ("0.9n" -> "1n"); BinarySI values are capped at 2**63-1;
* the canonical string uses the format the value was parsed with: DecimalSI (``m``, ``k``,
  ``M`` ...), BinarySI (``Ki``, ``Mi`` ...; values in (-1024, 1024) or not whole print as
  DecimalSI) or DecimalExponent (``e3``); the mantissa is an integer with the largest
  exponent that is a multiple of 3 (of 10 for binary) and loses nothing;
* a parsed string already in canonical form is kept verbatim, as Go caches it (so
  ``"+1"`` and ``"1E3"`` print as given);
* ``value()`` / ``milli_value()`` round away from zero (Go's ``Value()`` rounds up).

    Quantity.parse("100m") -> Quantity; str(q) -> canonical string ("100m", "1Gi", "1500m")
    Quantity.from_milli(1500, DECIMAL_SI); Quantity.from_int(3, BINARY_SI)
    Quantity.from_float(0.25, DECIMAL_SI)
    q.milli_value() -> int; q.value() -> int; q.as_float()
    q + q2, q - q2, q * 3, -q, comparisons (by value)
"""
from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

NANO, MICRO, MILLI = -9, -6, -3

_DEC_SUFFIX = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DEC_BY_EXP = {v: k for k, v in _DEC_SUFFIX.items()}
_BIN_SUFFIX = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BIN_BY_EXP = {v: k for k, v in _BIN_SUFFIX.items()}
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_DIGITS = frozenset("0123456789")
_MAX_INT64 = (1 << 63) - 1
_INT32 = 1 << 31
# the regular expression Go's error message quotes
_SPLIT_RE = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ERR_FORMAT_WRONG = f"quantities must match the regular expression '{_SPLIT_RE}'"
ERR_NUMERIC = "unable to parse numeric part of quantity"
ERR_SUFFIX = "unable to parse quantity's suffix"
# refuse to build integers with more digits than this (a "1e999999999" must not eat memory)
_MAX_DIGITS = 100_000


class QuantityError(ValueError):
    """A string that is not a quantity (message: Go's ``ErrFormatWrong`` / ``ErrSuffix`` ...)."""


def _pow10(n: int) -> int:
    if n > _MAX_DIGITS:
        raise OverflowError("quantity too large to compute with")
    return 10 ** n


def _round_away(m: int, e: int, scale: int) -> tuple[int, int, bool]:
    """``m * 10**e`` rounded away from zero to a multiple of ``10**scale``:
    (mantissa, exponent, exact)."""
    if e >= scale:
        return m, e, True
    shift = scale - e
    neg = m < 0
    a = -m if neg else m
    if shift > len(str(a)) + 1:  # smaller than one unit of the scale
        q, r = 0, a
    else:
        q, r = divmod(a, _pow10(shift))
    if r:
        q += 1
    return (-q if neg else q), scale, r == 0


def _strip10(m: int, e: int) -> tuple[int, int]:
    if m == 0:
        return 0, 0
    while m % 10 == 0:
        m //= 10
        e += 1
    return m, e


def _scan(s: str) -> tuple[bool, str, str, str]:
    """Go's ``parseQuantityString``: (positive, numerator, denominator, suffix)."""
    pos, end, positive = 0, len(s), True
    if end and s[0] in "+-":
        positive = s[0] == "+"
        pos = 1
    while pos < end and s[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "", ""
    start = pos
    while pos < end and s[pos] in _DIGITS:
        pos += 1
    num = s[start:pos] or "0"
    denom = ""
    if pos < end and s[pos] == ".":
        pos += 1
        start = pos
        while pos < end and s[pos] in _DIGITS:
            pos += 1
        denom = s[start:pos]
    suffix_start = pos
    while pos < end and s[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and s[pos] in "+-":
        pos += 1
    while pos < end and s[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise QuantityError(ERR_FORMAT_WRONG)
    return positive, num, denom, s[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int, str]:
    """(base, exponent, format) of a suffix, as Go's ``suffixHandler.interpret``."""
    if suffix in _DEC_SUFFIX:
        return 10, _DEC_SUFFIX[suffix], DECIMAL_SI
    if suffix in _BIN_SUFFIX:
        return 2, _BIN_SUFFIX[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        rest = suffix[1:]
        body = rest[1:] if rest[:1] in ("+", "-") else rest
        if body and body.isdigit() and len(body) <= 19:
            exp = int(rest)
            if -_INT32 <= exp < _INT32:
                return 10, exp, DECIMAL_EXPONENT
    raise QuantityError(ERR_SUFFIX)


_PARSED: dict[str, "Quantity"] = {}
_PARSED_MAX = 4096


class Quantity:
    """An exact decimal quantity with a preferred format. Immutable."""

    __slots__ = ("_m", "_e", "_fmt", "_s")

    def __init__(self, mantissa: int = 0, exponent: int = 0, format: str = DECIMAL_SI, *, _s: str = ""):
        self._m = int(mantissa)
        self._e = int(exponent) if mantissa else 0
        self._fmt = format
        self._s = _s

    @property
    def format(self) -> str:
        """DecimalSI, BinarySI or DecimalExponent: how the canonical string is written."""
        return self._fmt

    # --- construction -------------------------------------------------------------------
    @classmethod
    def parse(cls, s: str) -> "Quantity":
        """``resource.ParseQuantity``; raises :class:`QuantityError` (a ValueError). Results are
        cached (a Quantity is immutable; metrics repeat the same few strings)."""
        if not isinstance(s, str):
            raise QuantityError(ERR_FORMAT_WRONG)
        q = _PARSED.get(s)
        if q is None:
            q = cls._parse(s)
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()
            _PARSED[s] = q
        return q

    @classmethod
    def _parse(cls, s: str) -> "Quantity":
        if not s:
            raise QuantityError(ERR_FORMAT_WRONG)
        if s == "0":
            return cls(0, 0, DECIMAL_SI, _s="0")
        positive, num, denom, suf = _scan(s)
        base, exponent, fmt = _interpret(suf)
        digits = int(num + denom)
        # Go keeps a string it parsed when it is already canonical (its int64 fast path)
        cached = ""
        if base == 10:
            scale = exponent - len(denom)
            shifted = num + denom
            if len(shifted) <= 18 and scale >= NANO and scale % 3 == 0 and not shifted.endswith("000") \
                    and shifted[0] != "0":
                cached = s
            m, e = (digits if positive else -digits), scale
        else:
            m, e = digits << exponent, -len(denom)
            if not positive:
                m = -m
            if not denom and len(num) + int(exponent * 3 / 10) + 1 <= 15 and exponent % 10 == 0 \
                    and (digits & 0x07) != 0:
                cached = s
        m, e, _exact = _round_away(m, e, NANO)
        if fmt == BINARY_SI:  # here e <= 0: binary mantissas are whole, denominators shift down
            if abs(m) > _MAX_INT64 * _pow10(-e):  # Go caps binary quantities at 2**63-1
                m, e = (_MAX_INT64 if m > 0 else -_MAX_INT64), 0
            if m and abs(m) < _pow10(-e):  # 0 < |q| < 1: Go switches to DecimalSI
                fmt = DECIMAL_SI
        return cls(m, e, fmt, _s=cached)

    @classmethod
    def from_int(cls, value: int, format: str = DECIMAL_SI) -> "Quantity":
        """``resource.NewQuantity``."""
        return cls(int(value), 0, format)

    @classmethod
    def from_milli(cls, value: int, format: str = DECIMAL_SI) -> "Quantity":
        """``resource.NewMilliQuantity``: ``value`` thousandths."""
        return cls(int(value), MILLI, format)

    @classmethod
    def from_scaled(cls, value: int, scale: int) -> "Quantity":
        """``resource.NewScaledQuantity``: ``value * 10**scale``, DecimalSI."""
        return cls(int(value), int(scale), DECIMAL_SI)

    @classmethod
    def from_float(cls, value: float, format: str = DECIMAL_SI) -> "Quantity":
        """The float's shortest decimal form, kept to nano precision (finer digits rounded away
        from zero, as parsing does)."""
        if isinstance(value, bool) or not math.isfinite(value):
            raise QuantityError(f"not a finite number: {value!r}")
        sign, digits, exp = Decimal(repr(float(value))).as_tuple()
        m = int("".join(map(str, digits)) or "0")
        m, e, _ = _round_away(-m if sign else m, int(exp), NANO)
        return cls(m, e, format)

    @classmethod
    def coerce(cls, v: Any) -> "Quantity":
        """A Quantity from a Quantity, a string or a number (for pydantic models and providers)."""
        if isinstance(v, Quantity):
            return v
        if isinstance(v, str):
            return cls.parse(v.strip())
        if isinstance(v, bool):
            raise QuantityError("a boolean is not a quantity")
        if isinstance(v, int):
            return cls.from_int(v)
        if isinstance(v, float):
            return cls.from_float(v)
        raise QuantityError(f"cannot make a quantity of {type(v).__name__}")

    # --- reading ------------------------------------------------------------------------
    def is_zero(self) -> bool:
        return self._m == 0

    def sign(self) -> int:
        return (self._m > 0) - (self._m < 0)

    def scaled_value(self, scale: int) -> int:
        """``ceil(q / 10**scale)``, rounding away from zero (Go's int64-backed ScaledValue)."""
        m, e, _ = _round_away(self._m, self._e, scale)
        return m * _pow10(e - scale)

    def value(self) -> int:
        return self.scaled_value(0)

    def milli_value(self) -> int:
        return self.scaled_value(MILLI)

    def as_float(self) -> float:
        return float(Decimal(self._m).scaleb(self._e))

    def as_decimal(self) -> Decimal:
        return Decimal(self._m).scaleb(self._e)

    def round_up(self, scale: int) -> tuple["Quantity", bool]:
        """``RoundUp``: the value rounded away from zero to ``10**scale``, and whether that was exact."""
        m, e, exact = _round_away(self._m, self._e, scale)
        if exact:
            return self, True
        return Quantity(m, e, self.format), False

    # --- the canonical string -----------------------------------------------------------
    def canonical(self) -> tuple[str, str]:
        """(number, suffix) as Go's ``CanonicalizeBytes``."""
        if self._m == 0:
            return "0", ""
        fmt = self.format
        rounded = 0
        if fmt == BINARY_SI:
            if self._cmp_int(-1024) > 0 and self._cmp_int(1024) < 0:
                fmt = DECIMAL_SI
            else:
                m, e, exact = _round_away(self._m, self._e, 0)
                if exact:
                    rounded = m * _pow10(e)
                else:
                    fmt = DECIMAL_SI
        elif fmt not in (DECIMAL_SI, DECIMAL_EXPONENT):
            fmt = DECIMAL_EXPONENT
        if fmt == BINARY_SI:
            n, times = rounded, 0
            while abs(n) >= 1024 and n % 1024 == 0:
                n //= 1024
                times += 1
            return str(n), _BIN_BY_EXP.get(times * 10, "")
        m, e = _strip10(self._m, self._e)
        while e % 3:
            m *= 10
            e -= 1
        if fmt == DECIMAL_SI and e in _DEC_BY_EXP:
            return str(m), _DEC_BY_EXP[e]
        return str(m), (f"e{e}" if e else "")  # DecimalExponent, or DecimalSI beyond n..E

    def __str__(self) -> str:
        if not self._s:
            n, suf = self.canonical()
            self._s = n + suf  # a cache, as Go's
        return self._s

    def __repr__(self) -> str:
        return f"Quantity({str(self)!r})"

    def to_json(self) -> str:
        return str(self)

    # --- arithmetic ---------------------------------------------------------------------
    def _aligned(self, other: "Quantity") -> tuple[int, int, int]:
        e = min(self._e, other._e)
        return self._m * _pow10(self._e - e), other._m * _pow10(other._e - e), e

    def __add__(self, other: "Quantity") -> "Quantity":
        if not isinstance(other, Quantity):
            return NotImplemented
        a, b, e = self._aligned(other)
        return Quantity(a + b, e, other.format if self._m == 0 else self.format)

    def __sub__(self, other: "Quantity") -> "Quantity":
        if not isinstance(other, Quantity):
            return NotImplemented
        a, b, e = self._aligned(other)
        return Quantity(a - b, e, other.format if self._m == 0 else self.format)

    def __mul__(self, k: int) -> "Quantity":
        if isinstance(k, bool) or not isinstance(k, int):
            return NotImplemented
        return Quantity(self._m * k, self._e, self.format)

    __rmul__ = __mul__

    def __neg__(self) -> "Quantity":
        return Quantity(-self._m, self._e, self.format)

    # --- comparison (by value) ----------------------------------------------------------
    def _cmp_int(self, n: int) -> int:
        return self.cmp(Quantity(n, 0))

    def cmp(self, other: "Quantity") -> int:
        """-1, 0 or 1 (Go's ``Cmp``), without building huge integers for far-apart exponents."""
        sa, sb = self.sign(), other.sign()
        if sa != sb or sa == 0:
            return (sa > sb) - (sa < sb)
        (ma, ea), (mb, eb) = _strip10(abs(self._m), self._e), _strip10(abs(other._m), other._e)
        # magnitude order: digits + exponent
        oa, ob = len(str(ma)) + ea, len(str(mb)) + eb
        if oa != ob:
            r = 1 if oa > ob else -1
        else:
            e = min(ea, eb)
            a, b = ma * _pow10(ea - e), mb * _pow10(eb - e)
            r = (a > b) - (a < b)
        return r * sa

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.cmp(other) == 0

    def __lt__(self, other: "Quantity") -> bool:
        return self.cmp(other) < 0

    def __le__(self, other: "Quantity") -> bool:
        return self.cmp(other) <= 0

    def __gt__(self, other: "Quantity") -> bool:
        return self.cmp(other) > 0

    def __ge__(self, other: "Quantity") -> bool:
        return self.cmp(other) >= 0

    def __hash__(self) -> int:
        return hash(_strip10(self._m, self._e))

    def __bool__(self) -> bool:
        return self._m != 0

    # --- pydantic: a field of type Quantity validates str/int/float, dumps the canonical string
    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, _handler: Any) -> Any:
        from pydantic_core import core_schema

        def validate(v: Any) -> "Quantity":
            try:
                return cls.coerce(v)
            except (QuantityError, OverflowError) as e:
                raise ValueError(str(e)) from None

        # a Quantity instance is accepted in Rust (no Python call: computed objects hold thousands)
        return core_schema.json_or_python_schema(
            json_schema=core_schema.no_info_plain_validator_function(validate),
            python_schema=core_schema.union_schema([core_schema.is_instance_schema(cls),
                                                    core_schema.no_info_plain_validator_function(validate)]),
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="always"))

    @classmethod
    def __get_pydantic_json_schema__(cls, _schema: Any, _handler: Any) -> dict:
        return {"type": "string"}  # as Go's Quantity.OpenAPISchemaType
