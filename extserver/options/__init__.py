"""``extserver serve``'s options: one module per flag group (as kube-apiserver's named flag
sets), each with ``add_flags(parser)``; :func:`build_parser` assembles them.

Lower layers raise :class:`FlagError` (from :mod:`.errors`) for a flag value that parsed but
cannot be used; the CLI prints it as one line and exits 2."""
from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import admission, authentication, authorization, generic, logging_flags, prometheus, providers, serving, storage
from .errors import FlagError
from .groups import load_groups

__all__ = ["FlagError", "build_parser", "load_groups", "FLAG_GROUPS"]

#: every flag group, in the order ``--help`` shows them; a feature adds its module here
FLAG_GROUPS = [generic, serving, storage, authentication, authorization, admission, providers, prometheus,
               logging_flags]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, exit 2
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="extserver", description="A Kubernetes aggregation-layer extension API server.")
    p.add_argument("--version", action="version", version=f"extserver {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    s = sub.add_parser("serve", help="run the API server",
                       description="Run the API server. With no cluster configuration it runs in local mode: "
                                   "self-signed serving certificate, a local CA and an admin kubeconfig.")
    for mod in FLAG_GROUPS:
        mod.add_flags(s)
    return p
