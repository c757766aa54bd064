"""Structured logging conventions (klog's ``-v`` levels and ``InfoS`` key/value pairs) and
the per-request access log line (kube's ``httplog``, at ``-v=3``).

``log.log(V(2), "msg", extra=kv(key=value))``: the formatters set up by ``extserver serve``
(``--log-format text|json``) render the pairs. Never pass certificates, keys or tokens."""
from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from .chain import RequestContext

#: the ``extra`` attribute holding a record's key/value pairs
KV_ATTR = "kv"

access_log = logging.getLogger("extserver.httplog")


def V(level: int) -> int:
    """The logging level of klog's ``V(level)``: shown when ``-v >= level`` (``-v=0`` is INFO)."""
    return logging.INFO - level


def kv(**fields: Any) -> dict[str, dict[str, Any]]:
    """``extra=`` for a structured record: ``log.info("msg", extra=kv(verb="GET"))``."""
    return {KV_ATTR: fields}


def source_ip(request: web.Request) -> str:
    return request.remote or ""


def log_request(ctx: RequestContext, status: int, latency: float) -> None:
    """One line per request at ``-v=3`` (cheap when disabled: one level check)."""
    if not access_log.isEnabledFor(V(3)):
        return
    r = ctx.request
    access_log.log(V(3), "HTTP", extra=kv(
        verb=ctx.info.verb if ctx.info is not None else r.method.lower(), URI=r.raw_path,
        latency=f"{latency * 1000:.3f}ms", userAgent=r.headers.get("User-Agent", ""),
        auditID=ctx.audit_id, srcIP=source_ip(r), resp=status))
