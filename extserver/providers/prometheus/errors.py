"""How the adapter's failures reach the client: the source is down -> 503 with Retry-After
(the provider framework's :class:`SourceUnavailable`), Prometheus refused the query -> 500
``InternalError`` carrying Prometheus's own text (upstream hides it behind "unable to fetch
metrics"; the text is what an operator needs), never a traceback."""
from __future__ import annotations

import math

from ...machinery import errors as E
from ..provider import SourceUnavailable
from .client import PrometheusError, PrometheusQueryError, PrometheusUnavailable

#: seconds a client is asked to wait before retrying while Prometheus is unreachable
RETRY_AFTER = 5

_INT64_MAX = (1 << 63) - 1


def status_for(e: PrometheusError) -> Exception:
    if isinstance(e, PrometheusUnavailable):
        return SourceUnavailable(f"unable to fetch metrics from Prometheus: {e}", retry_after=RETRY_AFTER)
    if isinstance(e, PrometheusQueryError):
        return E.InternalError(f"unable to fetch metrics from Prometheus: {e}")
    return E.InternalError(f"unable to fetch metrics from Prometheus: {e}")


def milli(value: float) -> int:
    """``int64(value * 1000.0)`` as Go converts it (truncated; NaN is 0 as upstream's custom
    provider makes it; out of range saturates)."""
    if math.isnan(value):
        return 0
    v = value * 1000.0
    if v >= _INT64_MAX:
        return _INT64_MAX
    if v <= -_INT64_MAX - 1:
        return -_INT64_MAX - 1
    return math.trunc(v)
