"""Authentication flags: client certificates, the front proxy, TokenReview, anonymous."""
from __future__ import annotations

from .types import boolean, csv, duration


def add_flags(parser) -> None:
    a = parser.add_argument_group("Authentication flags")
    a.add_argument("--client-ca-file", default=None)
    a.add_argument("--requestheader-client-ca-file", default=None)
    a.add_argument("--requestheader-allowed-names", type=csv, default=[])
    a.add_argument("--requestheader-username-headers", type=csv, default=["X-Remote-User"])
    a.add_argument("--requestheader-group-headers", type=csv, default=["X-Remote-Group"])
    a.add_argument("--requestheader-extra-headers-prefix", type=csv, default=["X-Remote-Extra-"])
    a.add_argument("--authentication-kubeconfig", default=None)
    a.add_argument("--authentication-skip-lookup", type=boolean, nargs="?", const=True, default=False)
    a.add_argument("--authentication-token-webhook-cache-ttl", type=duration, default=10.0)
    a.add_argument("--anonymous-auth", type=boolean, nargs="?", const=True, default=None,
                   help="default: true in a cluster, false in local mode")
