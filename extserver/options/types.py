"""Flag value types: each raises ``argparse.ArgumentTypeError`` with one clear line."""
from __future__ import annotations

import argparse
import re


def duration(s: str) -> float:
    """Go-style durations: 10s, 1m30s, 500ms, 2h, or a bare number of seconds."""
    s = s.strip()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", s)
    if not parts or "".join(a + b for a, b in parts) != s:
        raise argparse.ArgumentTypeError(f"invalid duration {s!r} (e.g. 10s, 1m30s, 500ms)")
    mult = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(a) * mult[b] for a, b in parts)


def port(s: str) -> int:
    try:
        p = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {s!r}") from None
    if not 0 <= p <= 65535:
        raise argparse.ArgumentTypeError(f"port {p} is out of range 0-65535")
    return p


def non_negative_int(s: str) -> int:
    try:
        n = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {s!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def csv(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def boolean(s: str) -> bool:
    if s.lower() in ("1", "true", "yes"):
        return True
    if s.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {s!r}")
