"""Which API groups ``serve`` serves: the bundled ones, entry points and ``--api-module``."""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from .errors import FlagError


def _import_from_cwd() -> None:
    """``--api-module mod`` finds ``mod.py`` (or the package ``mod/``) in the current
    directory, as ``python -m`` does: an installed console script's ``sys.path`` does not
    hold the current directory. It goes last, so it never shadows an installed module."""
    import os
    import sys
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def load_groups(args, extra=()) -> list:
    """The groups to serve; ``extra`` are groups built from other flags (the Prometheus adapter's)."""
    from ..api import APIGroup
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
            from ..apis import wardle
            add(wardle.group, "extserver.apis.wardle")
    if args.api_module:
        _import_from_cwd()
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
        from ..apis import wardle
        add(wardle.group, "extserver.apis.wardle")
    for g in extra:
        add(g, "the Prometheus adapter")
    if not groups:
        raise FlagError("no API groups to serve")
    return groups
