"""``extserver``: flags in named groups -> options -> complete -> validate -> run.

Flags follow kube-apiserver's names. A bad flag value prints one line and exits 2."""
from __future__ import annotations

import sys

from .options import ERROR_PREFIX, FlagError, build_parser, load_groups

__all__ = ["main", "build_parser", "load_groups", "FlagError"]



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
            sys.stderr.write(f"{ERROR_PREFIX}{e}\n")
            return 2
        except KeyboardInterrupt:
            return 0
    return 2


if __name__ == "__main__":  # pragma: no cover
    # run as ``python -m extserver.cli``: use the package module, so that its exception
    # classes are the ones the server raises
    from extserver.cli import main as _main
    sys.exit(_main())
