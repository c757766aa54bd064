"""Authorization flags: the delegated authorizer and its caches."""
from __future__ import annotations

from .types import csv, duration


def add_flags(parser) -> None:
    z = parser.add_argument_group("Authorization flags")
    z.add_argument("--authorization-mode", default=None, choices=["Delegated", "AlwaysAllow"],
                   help="Delegated: SubjectAccessReview to the main apiserver "
                        "(default: Delegated in a cluster, AlwaysAllow for the local admin in local mode)")
    z.add_argument("--authorization-kubeconfig", default=None, metavar="FILE",
                   help="kubeconfig of the main apiserver for SubjectAccessReview "
                        "(default in a cluster: the service account)")
    z.add_argument("--authorization-webhook-cache-authorized-ttl", type=duration, default=10.0,
                   metavar="DURATION", help="how long an 'allowed' answer is cached")
    z.add_argument("--authorization-webhook-cache-unauthorized-ttl", type=duration, default=10.0,
                   metavar="DURATION", help="how long a 'denied' answer is cached")
    z.add_argument("--authorization-always-allow-paths", type=csv, default=["/healthz", "/readyz", "/livez"],
                   metavar="PATHS", help="non-resource paths served without authorization (a trailing * "
                                         "matches a prefix)")
    z.add_argument("--authorization-always-allow-groups", type=csv, default=["system:masters"],
                   metavar="GROUPS", help="groups allowed everything without asking the authorizer")
