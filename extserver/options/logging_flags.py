"""Logging and audit flags."""
from __future__ import annotations

from .types import non_negative_int


def add_flags(parser) -> None:
    o = parser.add_argument_group("Logging and audit flags")
    o.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="text: klog's header; json: one JSON object per line on stdout and stderr")
    o.add_argument("-v", "--v", dest="verbosity", type=non_negative_int, default=0, metavar="N",
                   help="log verbosity (3: a line per request; 6: the libraries' debug logs too)")
    o.add_argument("--audit-log-path", default=None, metavar="FILE",
                   help="write audit events (audit.k8s.io/v1, JSON lines) to this file; - for stdout")
    o.add_argument("--audit-policy-file", default=None, metavar="FILE",
                   help="audit Policy (kube's format); nothing is recorded without one")
