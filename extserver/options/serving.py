"""Secure serving flags: listener and TLS."""
from __future__ import annotations

from .types import port


def add_flags(parser) -> None:
    ss = parser.add_argument_group("Secure serving flags")
    ss.add_argument("--bind-address", default="0.0.0.0")
    ss.add_argument("--secure-port", type=port, default=8443)
    ss.add_argument("--cert-dir", default=None, help="default: <data-dir>/certs")
    ss.add_argument("--tls-cert-file", default=None)
    ss.add_argument("--tls-private-key-file", default=None)
    ss.add_argument("--tls-min-version", default="VersionTLS12", choices=["VersionTLS12", "VersionTLS13"])
