"""The Prometheus adapter's flags, named and defaulted as prometheus-adapter's
(``cmd/adapter/adapter.go``), except ``--adapter-config`` (upstream: ``--config``). The
adapter runs when ``--adapter-config`` is given
(:func:`extserver.providers.prometheus.adapter.adapter_from_args` checks them)."""
from __future__ import annotations

from .types import duration

DEFAULT_URL = "https://localhost"


def add_flags(parser) -> None:
    g = parser.add_argument_group("Prometheus adapter flags")
    g.add_argument("--adapter-config", default=None, metavar="FILE",
                   help="prometheus-adapter's configuration file (rules, externalRules, resourceRules); "
                        "serves the metrics APIs from Prometheus when given")
    g.add_argument("--prometheus-url", default=DEFAULT_URL, help="URL for connecting to Prometheus")
    g.add_argument("--metrics-relist-interval", type=duration, default=600.0, metavar="DURATION",
                   help="interval at which to re-list the set of all available metrics from Prometheus")
    g.add_argument("--metrics-max-age", type=duration, default=0.0, metavar="DURATION",
                   help="period for which to query the set of available metrics from Prometheus "
                        "(default: the relist interval)")
    g.add_argument("--prometheus-ca-file", default=None, help="CA file to use when connecting with Prometheus")
    g.add_argument("--prometheus-client-tls-cert-file", default=None,
                   help="client TLS certificate file to use when connecting with Prometheus")
    g.add_argument("--prometheus-client-tls-key-file", default=None,
                   help="client TLS key file to use when connecting with Prometheus")
    g.add_argument("--prometheus-token-file", default=None,
                   help="file containing the bearer token to use when connecting with Prometheus")
    g.add_argument("--prometheus-header", action="append", default=[], metavar="KEY=VALUE",
                   help="header to set on requests to --prometheus-url (repeatable)")
    g.add_argument("--prometheus-verb", default="GET",
                   help='HTTP verb to set on requests to Prometheus: "GET" or "POST"')
