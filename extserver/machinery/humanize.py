"""Human-readable durations as ``k8s.io/apimachinery/pkg/util/duration`` prints them
(the ``AGE`` column of ``kubectl get`` and of kube's server-side printers)."""
from __future__ import annotations

import datetime as _dt

_NS_PER_SECOND = 1_000_000_000
_NS_PER_MINUTE = 60 * _NS_PER_SECOND
_NS_PER_HOUR = 60 * _NS_PER_MINUTE


def _to_ns(d: float | _dt.timedelta) -> int:
    """A ``time.Duration``: whole nanoseconds."""
    if isinstance(d, _dt.timedelta):
        return (d.days * 86_400 + d.seconds) * _NS_PER_SECOND + d.microseconds * 1000
    return round(d * _NS_PER_SECOND)


def _trunc(ns: int, unit: int) -> int:
    """Go's integer division (truncates toward zero)."""
    q = abs(ns) // unit
    return -q if ns < 0 else q


def human_duration(d: float | _dt.timedelta) -> str:
    """``duration.HumanDuration``: ~2-3 significant figures (``45s``, ``3m2s``, ``5h10m``,
    ``2d3h``, ``1y30d``). ``d`` is in seconds (or a ``timedelta``)."""
    ns = _to_ns(d)
    seconds = _trunc(ns, _NS_PER_SECOND)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = ns // _NS_PER_MINUTE
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = ns // _NS_PER_HOUR
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def short_human_duration(d: float | _dt.timedelta) -> str:
    """``duration.ShortHumanDuration``: one unit only (``45s``, ``3m``, ``5h``, ``2d``, ``1y``)."""
    ns = _to_ns(d)
    seconds = _trunc(ns, _NS_PER_SECOND)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    minutes = ns // _NS_PER_MINUTE
    if minutes < 60:
        return f"{minutes}m"
    hours = ns // _NS_PER_HOUR
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{int(ns / _NS_PER_HOUR / 24 / 365)}y"


def translate_timestamp_since(timestamp: str | None, now: _dt.datetime | None = None) -> str:
    """An ``Age`` cell as kube's printers fill it (``translateTimestampSince``):
    ``<unknown>`` for an unset RFC 3339 timestamp, else the :func:`human_duration` since it.
    (k8s.io/apiserver's default table convertor instead sends a ``Created At`` column of
    type ``date`` holding the RFC 3339 time, which kubectl turns into an age itself.)"""
    if not timestamp:
        return "<unknown>"
    then = _dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    if then.tzinfo is None:
        then = then.replace(tzinfo=_dt.timezone.utc)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return human_duration(now - then)
