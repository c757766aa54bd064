"""Flags of provider kinds (objects computed on request by user code, e.g. the metrics APIs)."""
from __future__ import annotations

import argparse

from .types import duration


def positive_duration(s: str) -> float:
    d = duration(s)
    if d <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {s!r}")
    return d


def add_flags(parser) -> None:
    g = parser.add_argument_group("Provider flags")
    g.add_argument("--provider-timeout", type=positive_duration, default=10.0, metavar="DURATION",
                   help="deadline of one call into a provider (get, list); past it the client gets "
                        "504 Timeout (default 10s)")
