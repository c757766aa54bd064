"""``extserver serve``'s options: one module per flag group (as kube-apiserver's named flag
sets), each with ``add_flags(parser)``; :func:`build_parser` assembles them.

Lower layers raise :class:`FlagError` (from :mod:`.errors`) for a flag value that parsed but
cannot be used; the CLI prints it as one line and exits 2."""
from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import (admission, authentication, authorization, connections, generic, logging_flags, prometheus, providers,
               serving, storage, workers)
from .errors import FlagError
from .groups import load_groups

__all__ = ["FlagError", "build_parser", "load_groups", "FLAG_GROUPS", "ERROR_PREFIX"]

#: every flag group, in the order ``--help`` shows them; a feature adds its module here
FLAG_GROUPS = [generic, serving, connections, storage, authentication, authorization, admission, providers,
               prometheus, logging_flags, workers]


#: the one prefix of every command-line error, whichever layer finds it
ERROR_PREFIX = "extserver: error: "


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, exit 2
        sys.stderr.write(f"{ERROR_PREFIX}{message}\n")
        raise SystemExit(2)


class _HelpFormatter(argparse.HelpFormatter):
    """Every flag's help ends with its default (unless the text already says it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if "default:" in text or "Default:" in text or d is None or d is False or d == [] or d == "" \
                or d == argparse.SUPPRESS or action.nargs == 0:
            return text
        shown = ",".join(d) if isinstance(d, list) else d
        if isinstance(d, float) and d.is_integer():
            shown = f"{int(d)}s" if action.metavar == "DURATION" else int(d)
        elif isinstance(d, float) and action.metavar == "DURATION":
            shown = f"{d}s"
        return f"{text} (default: {shown})"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="extserver", description="A Kubernetes aggregation-layer extension API server.")
    p.add_argument("--version", action="version", version=f"extserver {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    s = sub.add_parser("serve", help="run the API server", formatter_class=_HelpFormatter,
                       description="Run the API server. With no cluster configuration it runs in local mode: "
                                   "self-signed serving certificate, a local CA and an admin kubeconfig.")
    for mod in FLAG_GROUPS:
        mod.add_flags(s)
    return p
