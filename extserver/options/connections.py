"""Connection flags: Go's ``http.Server`` limits, which kube-apiserver hard-codes
(``ReadHeaderTimeout`` 32s, ``IdleTimeout`` 90s, ``MaxHeaderBytes`` 1 MiB), plus the caps an
event-loop server needs (open connections, TLS handshakes in flight)."""
from __future__ import annotations

from .types import duration, non_negative_int


def add_flags(parser) -> None:
    c = parser.add_argument_group("Connection flags")
    c.add_argument("--read-header-timeout", type=duration, default=32.0, metavar="DURATION",
                   help="a request's headers must arrive within this (from the connection's start or the "
                        "request's first byte); else the connection is closed. 0: no limit")
    c.add_argument("--idle-timeout", type=duration, default=90.0, metavar="DURATION",
                   help="an idle keep-alive connection is closed after this. 0: no limit")
    c.add_argument("--max-header-bytes", type=non_negative_int, default=1 << 20, metavar="BYTES",
                   help="request line and headers beyond this (plus 4096) get 431. 0: no limit")
    c.add_argument("--tls-handshake-timeout", type=duration, default=None, metavar="DURATION",
                   help="a TLS handshake must finish within this (default: --read-header-timeout, as Go derives it)")
    c.add_argument("--max-connections", type=non_negative_int, default=0, metavar="N",
                   help="open connections at most; at the cap the longest-idle connection is closed for a "
                        "new one, or the new one when none is idle. 0: derived from the open-files limit")
    c.add_argument("--max-tls-handshakes", type=non_negative_int, default=256, metavar="N",
                   help="TLS handshakes in flight at most; at the cap the oldest is aborted. 0: no limit")
