"""``extserver``: flags in named groups -> options -> complete -> validate -> run.

Flags follow kube-apiserver's names. A bad flag value prints one line and exits 2."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib.metadata import entry_points

from . import __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, exit 2
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


class FlagError(Exception):
    """A flag value that parsed but is not valid (reported as one line, exit 2)."""


def _duration(s: str) -> float:
    """Go-style durations: 10s, 1m30s, 500ms, 2h, or a bare number of seconds."""
    import re
    s = s.strip()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", s)
    if not parts or "".join(a + b for a, b in parts) != s:
        raise argparse.ArgumentTypeError(f"invalid duration {s!r} (e.g. 10s, 1m30s, 500ms)")
    mult = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(a) * mult[b] for a, b in parts)


def _port(s: str) -> int:
    try:
        p = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {s!r}") from None
    if not 0 <= p <= 65535:
        raise argparse.ArgumentTypeError(f"port {p} is out of range 0-65535")
    return p


def _positive_int(s: str) -> int:
    try:
        n = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {s!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def _csv(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def _bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes"):
        return True
    if s.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {s!r}")


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "extserver")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="extserver", description="A Kubernetes aggregation-layer extension API server.")
    p.add_argument("--version", action="version", version=f"extserver {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    s = sub.add_parser("serve", help="run the API server",
                       description="Run the API server. With no cluster configuration it runs in local mode: "
                                   "self-signed serving certificate, a local CA and an admin kubeconfig.")

    g = s.add_argument_group("Generic flags")
    g.add_argument("--api-module", action="append", default=[], metavar="MODULE",
                   help="python module defining an APIGroup named 'group' (or 'groups'); repeatable. "
                        "Default: the bundled groups and the 'extserver.groups' entry points.")
    g.add_argument("--no-bundled-groups", action="store_true", help="do not serve the bundled groups")
    g.add_argument("--max-request-body-bytes", type=_positive_int, default=3 * 1024 * 1024)
    g.add_argument("--min-request-timeout", type=_positive_int, default=1800,
                   help="seconds; watches end at a random time between this and twice this")
    g.add_argument("--request-timeout", type=_duration, default=60.0)
    g.add_argument("--max-requests-inflight", type=_positive_int, default=400)
    g.add_argument("--max-mutating-requests-inflight", type=_positive_int, default=200)
    g.add_argument("--shutdown-delay-duration", type=_duration, default=0.0)
    g.add_argument("--register-apiservice", type=_bool, nargs="?", const=True, default=False)
    g.add_argument("--service-name", default="extserver")
    g.add_argument("--service-namespace", default="extserver")

    ss = s.add_argument_group("Secure serving flags")
    ss.add_argument("--bind-address", default="0.0.0.0")
    ss.add_argument("--secure-port", type=_port, default=8443)
    ss.add_argument("--cert-dir", default=None, help="default: <data-dir>/certs")
    ss.add_argument("--tls-cert-file", default=None)
    ss.add_argument("--tls-private-key-file", default=None)
    ss.add_argument("--tls-min-version", default="VersionTLS12", choices=["VersionTLS12", "VersionTLS13"])

    st = s.add_argument_group("Storage flags")
    st.add_argument("--storage-backend", default="embedded", choices=["embedded", "etcd3"])
    st.add_argument("--data-dir", default=default_data_dir())
    st.add_argument("--embedded-sync", default="full", choices=["full", "normal"],
                    help="full: fsync every commit (survives power loss); normal: survives a process crash")
    st.add_argument("--etcd-servers", type=_csv, default=[])
    st.add_argument("--etcd-prefix", default="/registry")
    st.add_argument("--etcd-cafile", default=None)
    st.add_argument("--etcd-certfile", default=None)
    st.add_argument("--etcd-keyfile", default=None)
    st.add_argument("--etcd-compaction-interval", type=_duration, default=300.0,
                    help="how often old revisions are compacted (embedded store too); 0 disables")
    st.add_argument("--etcd-count-metric-poll-period", type=_duration, default=60.0)
    st.add_argument("--encryption-provider-config", default=None)
    st.add_argument("--default-watch-cache-size", type=_positive_int, default=100)

    a = s.add_argument_group("Authentication flags")
    a.add_argument("--client-ca-file", default=None)
    a.add_argument("--requestheader-client-ca-file", default=None)
    a.add_argument("--requestheader-allowed-names", type=_csv, default=[])
    a.add_argument("--requestheader-username-headers", type=_csv, default=["X-Remote-User"])
    a.add_argument("--requestheader-group-headers", type=_csv, default=["X-Remote-Group"])
    a.add_argument("--requestheader-extra-headers-prefix", type=_csv, default=["X-Remote-Extra-"])
    a.add_argument("--authentication-kubeconfig", default=None)
    a.add_argument("--authentication-skip-lookup", type=_bool, nargs="?", const=True, default=False)
    a.add_argument("--authentication-token-webhook-cache-ttl", type=_duration, default=10.0)
    a.add_argument("--anonymous-auth", type=_bool, nargs="?", const=True, default=None,
                   help="default: true in a cluster, false in local mode")

    z = s.add_argument_group("Authorization flags")
    z.add_argument("--authorization-mode", default=None, choices=["Delegated", "AlwaysAllow"],
                   help="default: Delegated in a cluster, AlwaysAllow for the local admin in local mode")
    z.add_argument("--authorization-kubeconfig", default=None)
    z.add_argument("--authorization-webhook-cache-authorized-ttl", type=_duration, default=10.0)
    z.add_argument("--authorization-webhook-cache-unauthorized-ttl", type=_duration, default=10.0)
    z.add_argument("--authorization-always-allow-paths", type=_csv, default=["/healthz", "/readyz", "/livez"])
    z.add_argument("--authorization-always-allow-groups", type=_csv, default=["system:masters"])
    z.add_argument("--kubeconfig", default=None, help="kubeconfig of the main apiserver (namespaces, webhooks)")

    o = s.add_argument_group("Logging and audit flags")
    o.add_argument("--log-format", default="text", choices=["text", "json"])
    o.add_argument("-v", "--v", dest="verbosity", type=_positive_int, default=0)
    o.add_argument("--audit-log-path", default=None)
    o.add_argument("--audit-policy-file", default=None)
    return p


def load_groups(args) -> list:
    from .api import APIGroup
    groups: list[APIGroup] = []
    seen: set[str] = set()

    def add(obj, origin: str) -> None:
        items = obj if isinstance(obj, (list, tuple)) else [obj]
        for g in items:
            if not isinstance(g, APIGroup):
                raise FlagError(f"{origin} does not define an APIGroup")
            if g.name in seen:
                continue
            seen.add(g.name)
            groups.append(g)

    if not args.no_bundled_groups and not args.api_module:
        for ep in entry_points(group="extserver.groups"):
            add(ep.load(), f"entry point {ep.name}")
        if not groups:  # not installed as a distribution: the bundled group directly
            from .apis import wardle
            add(wardle.group, "extserver.apis.wardle")
    for mod_name in args.api_module:
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as e:
            raise FlagError(f"--api-module {mod_name}: cannot import: {e}") from None
        obj = getattr(mod, "groups", None) or getattr(mod, "group", None)
        if obj is None:
            raise FlagError(f"--api-module {mod_name}: module defines neither 'group' nor 'groups'")
        add(obj, f"--api-module {mod_name}")
    if not args.no_bundled_groups and args.api_module:
        from .apis import wardle
        add(wardle.group, "extserver.apis.wardle")
    if not groups:
        raise FlagError("no API groups to serve")
    return groups


def raise_open_files_limit() -> None:
    """Raise the soft open-files limit to the hard one (as Go programs do at start): every
    watch holds a connection, and 1,024 descriptors run out quickly."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 20
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "serve":
        raise_open_files_limit()
        from .server.run import run_serve
        try:
            return run_serve(args)
        except FlagError as e:
            sys.stderr.write(f"extserver: error: {e}\n")
            return 2
        except KeyboardInterrupt:
            return 0
    return 2


if __name__ == "__main__":  # pragma: no cover
    # run as ``python -m extserver.cli``: use the package module, so that its exception
    # classes are the ones the server raises
    from extserver.cli import main as _main
    sys.exit(_main())
