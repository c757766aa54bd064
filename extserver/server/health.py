"""``/healthz``, ``/livez``, ``/readyz`` as kube serves them: named checks, ``?verbose``,
``?exclude=<check>`` (repeatable), one path per check (``/readyz/etcd``,
``/readyz/poststarthook/<hook>``), and kube's text format::

    [+]ping ok
    [-]shutdown failed: reason withheld
    readyz check failed

A check is ``async () -> (ok, reason)``; the reason is only shown on the per-check path
(and logged), never in the aggregate answer."""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..filters.httplog import V

log = logging.getLogger("extserver.health")

Check = Callable[[], Awaitable[tuple[bool, str]]]
KINDS = ("healthz", "livez", "readyz")
TEXT = "text/plain; charset=utf-8"


@dataclass(slots=True)
class HealthCheck:
    name: str
    check: Check
    kinds: frozenset[str]


def adapt(fn: Callable[[], Any]) -> Check:
    """A check from a function returning ``bool`` or ``(bool, reason)``, sync or async
    (e.g. an authenticator's ``healthy()``)."""

    async def check() -> tuple[bool, str]:
        res = fn()
        if inspect.isawaitable(res):
            res = await res
        if isinstance(res, tuple):
            return bool(res[0]), str(res[1]) if len(res) > 1 else ""
        return bool(res), "" if res else "not ready"

    return check


def _text(body: str, status: int = 200) -> web.Response:
    resp = web.Response(text=body, status=status)
    resp.headers["Content-Type"] = TEXT
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


class Health:
    """The checks of the three endpoints, in registration order."""

    def __init__(self) -> None:
        self.checks: list[HealthCheck] = []

    def add(self, name: str, check: Check, *, livez: bool = False, readyz: bool = True,
            healthz: bool = True) -> None:
        """Register ``check`` on the endpoints asked for (``/livez`` only when it must
        restart the process: a failing livez check gets the pod killed)."""
        if any(c.name == name for c in self.checks):
            raise ValueError(f"health check {name!r} is already registered")
        kinds = frozenset(k for k, on in (("healthz", healthz), ("livez", livez), ("readyz", readyz)) if on)
        self.checks.append(HealthCheck(name, check, kinds))

    def for_kind(self, kind: str) -> list[HealthCheck]:
        return [c for c in self.checks if kind in c.kinds]

    async def handle(self, request: web.Request, kind: str, sub: str) -> web.Response | None:
        """The answer for ``/<kind>[/<sub>]``; None when there is no such check (404)."""
        checks = self.for_kind(kind)
        if sub:
            for c in checks:
                if c.name == sub:
                    ok, why = await c.check()
                    return _text("ok") if ok else _text(f"internal server error: {why}\n", 500)
            return None
        excluded = set(request.query.getall("exclude", []))
        unknown = set(excluded)
        lines: list[str] = []
        failed: list[str] = []
        reasons: list[str] = []
        for c in checks:
            if c.name in excluded:
                unknown.discard(c.name)
                lines.append(f"[+]{c.name} excluded: ok\n")
                continue
            ok, why = await c.check()
            if ok:
                lines.append(f"[+]{c.name} ok\n")
            else:
                lines.append(f"[-]{c.name} failed: reason withheld\n")
                failed.append(c.name)
                reasons.append(f"[-]{c.name} failed: {why}")
        if unknown:
            names = ",".join(f'"{n}"' for n in sorted(unknown))
            lines.append(f"warn: some health checks cannot be excluded: no matches for {names}\n")
        body = "".join(lines)
        if failed:
            log.log(V(2), "%s check failed: %s\n%s", kind, ",".join(failed), "\n".join(reasons))
            return _text(f"{body}{kind} check failed\n", 500)
        if "verbose" not in request.query:
            return _text("ok")
        return _text(f"{body}{kind} check passed\n")
