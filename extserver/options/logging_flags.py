"""Logging and audit flags."""
from __future__ import annotations

from .types import non_negative_int


def add_flags(parser) -> None:
    o = parser.add_argument_group("Logging and audit flags")
    o.add_argument("--log-format", default="text", choices=["text", "json"])
    o.add_argument("-v", "--v", dest="verbosity", type=non_negative_int, default=0)
    o.add_argument("--audit-log-path", default=None)
    o.add_argument("--audit-policy-file", default=None)
