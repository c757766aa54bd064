"""Quantity against the test vectors of k8s.io/apimachinery's quantity_test.go (TestQuantityParse,
TestQuantityString, TestQuantityParseEmit, TestQuantityRoundUp, TestMilliNewSet, TestNewSet,
TestNewScaledSet, TestScaledValue, TestAdd/TestSub/TestMul, TestQuantityCmp), written here as
data: (input, expected value as mantissa*10**exponent, expected format) and canonical strings."""
from __future__ import annotations

import pytest
from pydantic import BaseModel

from extserver.machinery.quantity import (BINARY_SI, DECIMAL_EXPONENT, DECIMAL_SI, MICRO, MILLI, NANO,
                                          Quantity, QuantityError)

MAX_INT64 = (1 << 63) - 1
D, B, X = DECIMAL_SI, BINARY_SI, DECIMAL_EXPONENT

# input, mantissa, exponent, format
PARSE = [
    ("0", 0, 0, D), ("0n", 0, 0, D), ("0u", 0, 0, D), ("0m", 0, 0, D), ("0Ki", 0, 0, B), ("0k", 0, 0, D),
    ("0Mi", 0, 0, B), ("0M", 0, 0, D), ("0Gi", 0, 0, B), ("0G", 0, 0, D), ("0Ti", 0, 0, B), ("0T", 0, 0, D),
    ("1", 1, 0, D),
    ("1Ki", 1024, 0, B), ("8Ki", 8 * 1024, 0, B), ("7Mi", 7 * 1024 ** 2, 0, B), ("6Gi", 6 * 1024 ** 3, 0, B),
    ("5Ti", 5 * 1024 ** 4, 0, B), ("4Pi", 4 * 1024 ** 5, 0, B), ("3Ei", 3 * 1024 ** 6, 0, B),
    ("10Ti", 10 * 1024 ** 4, 0, B), ("100Ti", 100 * 1024 ** 4, 0, B),
    ("5n", 5, -9, D), ("4u", 4, -6, D), ("3m", 3, -3, D), ("9", 9, 0, D), ("8k", 8, 3, D), ("50k", 5, 4, D),
    ("7M", 7, 6, D), ("6G", 6, 9, D), ("5T", 5, 12, D), ("40T", 4, 13, D), ("300T", 3, 14, D), ("2P", 2, 15, D),
    ("1E", 1, 18, D),
    ("1E-3", 1, -3, X), ("1e3", 1, 3, X), ("1E6", 1, 6, X), ("1e9", 1, 9, X), ("1E12", 1, 12, X),
    ("1e15", 1, 15, X), ("1E18", 1, 18, X),
    ("1e14", 1, 14, X), ("1e13", 1, 13, X), ("100.035k", 100035, 0, D),
    ("0.001", 1, -3, D), ("0.0005k", 5, -1, D), ("0.005", 5, -3, D), ("0.05", 5, -2, D), ("0.5", 5, -1, D),
    ("0.00050k", 5, -1, D), ("0.00500", 5, -3, D), ("0.05000", 5, -2, D), ("0.50000", 5, -1, D),
    ("0.5e0", 5, -1, X), ("0.5e-1", 5, -2, X), ("0.5e-2", 5, -3, X), ("10.035M", 10035, 3, D),
    ("1.2e3", 12, 2, X), ("1.3E+6", 13, 5, X), ("1.40e9", 14, 8, X), ("1.53E12", 153, 10, X),
    ("1.6e15", 16, 14, X), ("1.7E18", 17, 17, X),
    ("9.01", 901, -2, D), ("8.1k", 81, 2, D), ("7.123456M", 7123456, 0, D), ("6.987654321G", 6987654321, 0, D),
    ("5.444T", 5444, 9, D), ("40.1T", 401, 11, D), ("300.2T", 3002, 11, D), ("2.5P", 25, 14, D),
    ("1.01E", 101, 16, D),
    # saturate / round (away from zero, to nano)
    ("3.001n", 4, -9, D), ("1.1E-9", 2, -9, X), ("0.0000000001", 1, -9, D), ("0.0000000005", 1, -9, D),
    ("0.00000000050", 1, -9, D), ("0.5e-9", 1, -9, X), ("0.9n", 1, -9, D), ("0.00000012345", 124, -9, D),
    ("0.00000012354", 124, -9, D), ("9Ei", MAX_INT64, 0, B), ("9223372036854775807Ki", MAX_INT64, 0, B),
    ("12E", 12, 18, D),
    # fractional binary
    ("100.035Ki", 10243584, -2, B), ("0.5Mi", 524288, 0, B), ("0.05Gi", 536870912, -1, B),
    ("0.025Ti", 274877906944, -1, B),
    # written by trolls
    ("0.000000000001Ki", 2, -9, D), (".001", 1, -3, D), (".0001k", 100, -3, D), ("1.", 1, 0, D),
    ("1.G", 1, 9, D),
]

INVALID = ["", "1.1.M", "1+1.0M", "0.1mi", "0.1am", "aoeu", ".5i", "1i", "-3.01i", "-3.01e-", " 1", "1 "]


@pytest.mark.parametrize("text,m,e,fmt", PARSE)
def test_parse(text: str, m: int, e: int, fmt: str) -> None:
    want = Quantity(m, e, fmt)
    for prefix, sign in (("", 1), ("+", 1), ("-", -1)):
        got = Quantity.parse(prefix + text)
        assert got == Quantity(sign * m, e, fmt), prefix + text
        assert got.format == fmt, prefix + text
    assert Quantity.parse(text).cmp(want) == 0


@pytest.mark.parametrize("text", INVALID)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(QuantityError):
        Quantity.parse(text)


def test_parse_error_messages_are_gos() -> None:
    with pytest.raises(QuantityError, match=r"^quantities must match the regular expression "
                                            r"'\^\(\[\+-\]\?\[0-9\.\]\+\)"):
        Quantity.parse("aoeu")
    with pytest.raises(QuantityError, match="^unable to parse quantity's suffix$"):
        Quantity.parse("1i")


# value (mantissa, exponent, format), canonical string, an alternate spelling that parses to it
STRING = [
    ((1024 ** 3, 0, B), "1Gi", "1024Mi"), ((300 * 1024 ** 2, 0, B), "300Mi", "307200Ki"),
    ((6 * 1024, 0, B), "6Ki", ""), ((1001 * 1024 ** 3, 0, B), "1001Gi", "1025024Mi"),
    ((1024 ** 4, 0, B), "1Ti", "1024Gi"), ((5, 0, B), "5", "5000m"), ((500, -3, B), "500m", "0.5"),
    ((1, 9, D), "1G", "1000M"), ((1000, 6, D), "1G", "0.001T"), ((1000000, 3, D), "1G", ""),
    ((1000000000, 0, D), "1G", ""), ((1, -3, D), "1m", "1000u"), ((80, -3, D), "80m", ""),
    ((1080, -3, D), "1080m", "1.08"), ((108, -2, D), "1080m", "1080000000n"), ((10800, -4, D), "1080m", ""),
    ((300, 6, D), "300M", ""), ((1, 12, D), "1T", ""), ((1, 18, D), "1E", ""),
    ((1, 21, D), "1e21", "1000E"), ((5, 21, D), "5e21", "5000E"), ((1, 24, D), "1e24", "1000000E"),
    ((1234567, 6, D), "1234567M", ""), ((1234567, -3, B), "1234567m", ""), ((3, 3, D), "3k", ""),
    ((1025, 0, B), "1025", ""), ((0, 0, D), "0", ""), ((0, 0, B), "0", ""),
    ((1, 9, X), "1e9", ".001e12"), ((1, -3, X), "1e-3", "0.001e0"), ((1, -9, X), "1e-9", "1000e-12"),
    ((80, -3, X), "80e-3", ""), ((300, 6, X), "300e6", ""), ((1, 12, X), "1e12", ""), ((1, 3, X), "1e3", ""),
    ((3, 3, X), "3e3", ""), ((0, 0, X), "0", "00"), ((1, -9, D), "1n", ""), ((80, -9, D), "80n", ""),
    ((1080, -9, D), "1080n", ""), ((108, -8, D), "1080n", ""), ((10800, -10, D), "1080n", ""),
    ((1, -6, D), "1u", ""), ((80, -6, D), "80u", ""), ((1080, -6, D), "1080u", ""),
]


@pytest.mark.parametrize("value,canonical,alternate", STRING)
def test_string(value: tuple, canonical: str, alternate: str) -> None:
    q = Quantity(*value)
    assert str(q) == canonical
    assert str(Quantity.parse(canonical)) == canonical
    if alternate:
        assert str(Quantity.parse(alternate)) == canonical
    if not q.is_zero():
        assert str(-q) == "-" + canonical


@pytest.mark.parametrize("text,canonical", [
    ("1Ki", "1Ki"), ("1Mi", "1Mi"), ("1Gi", "1Gi"), ("1024Mi", "1Gi"), ("1000M", "1G"), (".001Ki", "1024m"),
    (".000001Ki", "1024u"), (".000000001Ki", "1024n"), (".000000000001Ki", "2n"),
])
def test_parse_emit(text: str, canonical: str) -> None:
    assert str(Quantity.parse(text)) == canonical
    assert str(Quantity.parse("-" + text)) == "-" + canonical


def test_canonical_string_kept_verbatim_as_go_caches_it() -> None:
    # Go's ParseQuantity keeps the input when it is in canonical form (its fast path)
    assert str(Quantity.parse("+1")) == "+1"
    assert str(Quantity.parse("1E3")) == "1E3"
    assert str(Quantity.parse("1.500")) == "1.500"
    # ... and not when it is not
    assert str(Quantity.parse("1.5")) == "1500m"
    assert str(Quantity.parse("1000m")) == "1"
    assert str(Quantity.parse("1.5Gi")) == "1536Mi"
    # arithmetic results are always re-rendered
    assert str(Quantity.parse("+1") + Quantity.parse("0")) == "1"


@pytest.mark.parametrize("text,scale,m,e,exact", [
    ("9.01", -3, 901, -2, True), ("9.01", -2, 901, -2, True), ("9.01", -1, 91, -1, False),
    ("9.01", 0, 10, 0, False), ("9.01", 1, 10, 0, False), ("9.01", 2, 100, 0, False),
    ("-9.01", -3, -901, -2, True), ("-9.01", -2, -901, -2, True), ("-9.01", -1, -91, -1, False),
    ("-9.01", 0, -10, 0, False), ("-9.01", 1, -10, 0, False), ("-9.01", 2, -100, 0, False),
])
def test_round_up(text: str, scale: int, m: int, e: int, exact: bool) -> None:
    got, ok = Quantity.parse(text).round_up(scale)
    assert ok is exact
    assert got == Quantity(m, e)


@pytest.mark.parametrize("value,fmt,canonical", [
    (1, D, "1m"), (1000, D, "1"), (1234000, D, "1234"), (1024, B, "1024m"),
    (1000000, "invalidFormatDefaultsToExponent", "1e3"), (1024 * 1024, B, "1048576m"),
])
def test_from_milli(value: int, fmt: str, canonical: str) -> None:
    q = Quantity.from_milli(value, fmt)
    assert str(q) == canonical
    assert Quantity.parse(str(q)).milli_value() == value


@pytest.mark.parametrize("value,fmt,canonical", [
    (1, D, "1"), (1000, D, "1k"), (1234000, D, "1234k"), (1024, B, "1Ki"),
    (1000000, "invalidFormatDefaultsToExponent", "1e6"), (1024 * 1024, B, "1Mi"),
])
def test_from_int(value: int, fmt: str, canonical: str) -> None:
    q = Quantity.from_int(value, fmt)
    assert str(q) == canonical
    assert Quantity.parse(str(q)).value() == value


@pytest.mark.parametrize("value,scale,canonical", [
    (1, NANO, "1n"), (1000, NANO, "1u"), (1, MICRO, "1u"), (1000, MICRO, "1m"), (1, MILLI, "1m"),
    (1000, MILLI, "1"), (1, 0, "1"), (0, NANO, "0"), (0, MICRO, "0"), (0, MILLI, "0"), (0, 0, "0"),
])
def test_from_scaled(value: int, scale: int, canonical: str) -> None:
    q = Quantity.from_scaled(value, scale)
    assert str(q) == canonical
    assert Quantity.parse(str(q)).scaled_value(scale) == value


@pytest.mark.parametrize("from_scale,to_scale,expected", [
    (NANO, NANO, 1), (NANO, MICRO, 1), (NANO, MILLI, 1), (NANO, 0, 1), (MICRO, NANO, 1000), (MICRO, MICRO, 1),
    (MICRO, MILLI, 1), (MICRO, 0, 1), (MILLI, NANO, 10 ** 6), (MILLI, MICRO, 1000), (MILLI, MILLI, 1),
    (MILLI, 0, 1), (0, NANO, 10 ** 9), (0, MICRO, 10 ** 6), (0, MILLI, 1000), (0, 0, 1), (2, -2, 100 * 100),
])
def test_scaled_value_rounds_up(from_scale: int, to_scale: int, expected: int) -> None:
    assert Quantity.from_scaled(1, from_scale).scaled_value(to_scale) == expected


def test_value_rounds_away_from_zero() -> None:
    assert Quantity.parse("1.1").value() == 2
    assert Quantity.parse("1500u").milli_value() == 2
    assert Quantity.parse("-1.1").value() == -2


@pytest.mark.parametrize("a,b,want_add,want_sub", [
    ((10, 0, D), (1, 1, D), (20, 0, D), (0, 0, D)),
    ((10, 0, D), (1, 0, B), (11, 0, D), (9, 0, D)),
    ((10, 0, B), (1, 0, D), (11, 0, B), (9, 0, B)),
    ((0, 0, D), (50, 0, D), (50, 0, D), (-50, 0, D)),
    ((50, 0, D), (0, 0, D), (50, 0, D), (50, 0, D)),
    ((0, 0, D), (0, 0, D), (0, 0, D), (0, 0, D)),
])
def test_add_sub(a: tuple, b: tuple, want_add: tuple, want_sub: tuple) -> None:
    qa, qb = Quantity(*a), Quantity(*b)
    assert qa + qb == Quantity(*want_add)
    assert qa - qb == Quantity(*want_sub)
    assert (qa + qb).format == want_add[2]


@pytest.mark.parametrize("text", ["100m", "1Gi"])
def test_adding_zero_preserves_suffix(text: str) -> None:
    v, zero = Quantity.parse(text), Quantity.parse("0")
    assert str(v + zero) == text
    assert str(zero + v) == text
    assert str(v - zero) == text
    assert str(zero - v) == str(-v)


@pytest.mark.parametrize("a,k,want", [
    ((10, 0), 10, (100, 0)), ((10, 0), 1, (10, 0)), ((0, 0), 50, (0, 0)), ((50, 0), 0, (0, 0)),
    ((10, 0), -10, (-100, 0)), ((-50, 0), -50, (2500, 0)), ((MAX_INT64, 0), 2, (2 * MAX_INT64, 0)),
    ((MAX_INT64, 0), 10, (MAX_INT64, 1)),
])
def test_mul(a: tuple, k: int, want: tuple) -> None:
    assert Quantity(*a) * k == Quantity(*want)


@pytest.mark.parametrize("x,y,want", [("0", "0", 0), ("100m", "50m", 1), ("50m", "100m", -1),
                                      ("10000T", "100Gi", 1), ("1e-9", "1n", 0), ("1Ki", "1024", 0),
                                      ("1e2000000000", "1E", 1), ("-1e2000000000", "1n", -1)])
def test_cmp(x: str, y: str, want: int) -> None:
    qx, qy = Quantity.parse(x), Quantity.parse(y)
    assert qx.cmp(qy) == want
    assert qy.cmp(qx) == -want


def test_neg() -> None:
    assert str(-Quantity(901, -2)) == "-9010m"
    assert str(-Quantity(10, 0, B)) == "-10"


def test_huge_exponent_stays_cheap() -> None:
    assert str(Quantity.parse("1e1999999998")) == "1e1999999998"  # kept as given
    q = Quantity.parse("1e2000000000")
    assert str(q) == "100e1999999998"  # exponent to a multiple of 3, no 10**2e9 built
    with pytest.raises(OverflowError):
        q.value()


def test_from_float() -> None:
    assert str(Quantity.from_float(0.25)) == "250m"
    assert str(Quantity.from_float(1.5)) == "1500m"
    assert str(Quantity.from_float(3e-10)) == "1n"  # rounded up to nano, as parsing does
    assert str(Quantity.from_float(1048576.0, B)) == "1Mi"
    with pytest.raises(QuantityError):
        Quantity.from_float(float("nan"))


def test_pydantic_field() -> None:
    class M(BaseModel):
        usage: dict[str, Quantity]

    m = M.model_validate({"usage": {"cpu": "1.5", "memory": 1048576}})
    assert m.usage["cpu"] == Quantity.from_milli(1500)
    assert m.model_dump(mode="json") == {"usage": {"cpu": "1500m", "memory": "1048576"}}
    with pytest.raises(ValueError):
        M.model_validate({"usage": {"cpu": "1.1.M"}})
