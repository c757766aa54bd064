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
    g.add_argument("--no-bundled-groups", action="store_true", help="do not serve the bundled groups")
    g.add_argument("--max-request-body-bytes", type=non_negative_int, default=3 * 1024 * 1024)
    g.add_argument("--min-request-timeout", type=non_negative_int, default=1800,
                   help="seconds; watches end at a random time between this and twice this")
    g.add_argument("--request-timeout", type=duration, default=60.0)
    g.add_argument("--max-requests-inflight", type=non_negative_int, default=400)
    g.add_argument("--max-mutating-requests-inflight", type=non_negative_int, default=200)
    g.add_argument("--shutdown-delay-duration", type=duration, default=0.0)
    g.add_argument("--register-apiservice", type=boolean, nargs="?", const=True, default=False)
    g.add_argument("--service-name", default="extserver")
    g.add_argument("--service-namespace", default="extserver")
