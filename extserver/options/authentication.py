"""Authentication flags: client certificates, the front proxy, TokenReview, anonymous."""
from __future__ import annotations

from .types import boolean, csv, duration


def add_flags(parser) -> None:
    a = parser.add_argument_group("Authentication flags")
    a.add_argument("--client-ca-file", default=None, metavar="FILE",
                   help="CA bundle for client certificates (user = CN, groups = O); default: from the "
                        "extension-apiserver-authentication ConfigMap")
    a.add_argument("--requestheader-client-ca-file", default=None, metavar="FILE",
                   help="CA bundle of the front proxy: X-Remote-* headers are believed only from a client "
                        "certificate it signed; default: from the ConfigMap")
    a.add_argument("--requestheader-allowed-names", type=csv, default=[], metavar="NAMES",
                   help="front-proxy certificate common names allowed (empty: any the CA signed)")
    a.add_argument("--requestheader-username-headers", type=csv, default=["X-Remote-User"], metavar="HEADERS",
                   help="request headers holding the user name")
    a.add_argument("--requestheader-group-headers", type=csv, default=["X-Remote-Group"], metavar="HEADERS",
                   help="request headers holding the groups")
    a.add_argument("--requestheader-extra-headers-prefix", type=csv, default=["X-Remote-Extra-"],
                   metavar="PREFIXES", help="request header prefixes of the extra user attributes")
    a.add_argument("--authentication-kubeconfig", default=None, metavar="FILE",
                   help="kubeconfig of the main apiserver for TokenReview and the authentication ConfigMap "
                        "(default in a cluster: the service account)")
    a.add_argument("--authentication-skip-lookup", type=boolean, nargs="?", const=True, default=False,
                   metavar="BOOL", help="do not read the extension-apiserver-authentication ConfigMap")
    a.add_argument("--authentication-token-webhook-cache-ttl", type=duration, default=10.0, metavar="DURATION",
                   help="how long TokenReview answers are cached")
    a.add_argument("--anonymous-auth", type=boolean, nargs="?", const=True, default=None, metavar="BOOL",
                   help="serve unauthenticated requests as system:anonymous "
                        "(default: true in a cluster, false in local mode)")
