"""Secure serving flags: listener and TLS."""
from __future__ import annotations

from .types import port


def add_flags(parser) -> None:
    ss = parser.add_argument_group("Secure serving flags")
    ss.add_argument("--bind-address", default="0.0.0.0", metavar="IP",
                    help="the IP address to listen on (0.0.0.0 or :: for every interface)")
    ss.add_argument("--secure-port", type=port, default=8443, metavar="PORT",
                    help="the HTTPS port (0: a free port, printed at start-up)")
    ss.add_argument("--cert-dir", default=None, metavar="DIR",
                    help="where a self-signed serving certificate is generated when none is given "
                         "(default: <data-dir>/certs)")
    ss.add_argument("--tls-cert-file", default=None, metavar="FILE",
                    help="PEM serving certificate (with its chain); reloaded when the file changes")
    ss.add_argument("--tls-private-key-file", default=None, metavar="FILE",
                    help="PEM private key of --tls-cert-file")
    ss.add_argument("--tls-min-version", default="VersionTLS12", choices=["VersionTLS12", "VersionTLS13"],
                    help="the lowest TLS version accepted")
