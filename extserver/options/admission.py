"""Flags for what the server reads from the main apiserver (namespaces, webhooks)."""
from __future__ import annotations


def add_flags(parser) -> None:
    k = parser.add_argument_group("Main apiserver flags")
    k.add_argument("--kubeconfig", default=None, metavar="FILE",
                   help="kubeconfig of the main apiserver (namespaces for NamespaceLifecycle, "
                        "APIService registration); default in a cluster: the service account")
