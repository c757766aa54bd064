"""Authorization flags: the delegated authorizer and its caches."""
from __future__ import annotations

from .types import csv, duration


def add_flags(parser) -> None:
    z = parser.add_argument_group("Authorization flags")
    z.add_argument("--authorization-mode", default=None, choices=["Delegated", "AlwaysAllow"],
                   help="default: Delegated in a cluster, AlwaysAllow for the local admin in local mode")
    z.add_argument("--authorization-kubeconfig", default=None)
    z.add_argument("--authorization-webhook-cache-authorized-ttl", type=duration, default=10.0)
    z.add_argument("--authorization-webhook-cache-unauthorized-ttl", type=duration, default=10.0)
    z.add_argument("--authorization-always-allow-paths", type=csv, default=["/healthz", "/readyz", "/livez"])
    z.add_argument("--authorization-always-allow-groups", type=csv, default=["system:masters"])
