"""Generic flags: the groups served, request limits, lifecycle, APIService registration."""
from __future__ import annotations

from .types import boolean, duration, non_negative_int


def add_flags(parser) -> None:
    g = parser.add_argument_group("Generic flags")
    g.add_argument("--api-module", action="append", default=[], metavar="MODULE",
                   help="python module defining an APIGroup named 'group' (or 'groups'); repeatable. "
                        "Imported by its dotted name from the installed packages, PYTHONPATH or the "
                        "current directory (mod.py or mod/ there). "
                        "Default: the bundled groups and the 'extserver.groups' entry points.")
    g.add_argument("--no-bundled-groups", action="store_true",
                   help="do not serve the bundled groups (wardle.example.com)")
    g.add_argument("--max-request-body-bytes", type=non_negative_int, default=3 * 1024 * 1024, metavar="BYTES",
                   help="limit on the body of a write request; larger bodies are refused with 413")
    g.add_argument("--min-request-timeout", type=non_negative_int, default=1800, metavar="SECONDS",
                   help="the shortest time a watch is kept open; watches end at a random time between "
                        "this and twice this")
    g.add_argument("--request-timeout", type=duration, default=60.0, metavar="DURATION",
                   help="the default deadline of a non-watch request (504 after it); a request's "
                        "?timeout= may only shorten it")
    g.add_argument("--max-requests-inflight", type=non_negative_int, default=400, metavar="N",
                   help="the most read-only requests served at once; more get 429 (0: no limit)")
    g.add_argument("--max-mutating-requests-inflight", type=non_negative_int, default=200, metavar="N",
                   help="the most mutating requests served at once; more get 429 (0: no limit)")
    g.add_argument("--shutdown-delay-duration", type=duration, default=0.0, metavar="DURATION",
                   help="on SIGTERM, how long /readyz fails while requests are still served, before "
                        "the listener closes")
    g.add_argument("--register-apiservice", type=boolean, nargs="?", const=True, default=False, metavar="BOOL",
                   help="create or update this server's APIServices (with its serving CA as caBundle) "
                        "at start, through the in-cluster account or --kubeconfig")
    g.add_argument("--service-name", default="extserver",
                   help="the Service in front of this server (serving-certificate names, APIServices)")
    g.add_argument("--service-namespace", default="extserver", help="the namespace of --service-name")
