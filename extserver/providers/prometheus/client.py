"""A client for Prometheus's HTTP API (``/api/v1/series``, ``/api/v1/query``) on aiohttp.

As prometheus-adapter's ``pkg/client``: extra headers (``--prometheus-header k=v``), a
bearer token file, a CA file, GET or POST. Two kinds of failure, because the API layer
answers them differently: :class:`PrometheusUnavailable` (no answer in time, connection
refused, a 5xx that is not Prometheus's JSON — the source is down: 503) and
:class:`PrometheusQueryError` (Prometheus answered ``"status": "error"`` — the query is
wrong: 500 with Prometheus's text). Every request has a timeout, so nothing hangs."""
from __future__ import annotations

import asyncio
import logging
import math
import os
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from ... import __version__

log = logging.getLogger("extserver.prometheus")


class PrometheusError(Exception):
    """Base of the client's errors; ``str()`` is safe to show to an API client."""


class PrometheusUnavailable(PrometheusError):
    """Prometheus could not be reached or did not answer in time."""


class PrometheusQueryError(PrometheusError):
    """Prometheus refused the request (``errorType``: ``bad_data``, ``execution``, ...)."""

    def __init__(self, error_type: str, message: str):
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


@dataclass(slots=True)
class Sample:
    """One element of an instant vector (or a scalar, with no labels)."""

    labels: dict[str, str]
    value: float
    timestamp: float  # Unix seconds


@dataclass(slots=True)
class QueryResult:
    result_type: str  # vector | scalar | matrix | string
    samples: list[Sample] = field(default_factory=list)


def parse_sample_value(v: str) -> float:
    """Prometheus's sample value text (``"1.5"``, ``"NaN"``, ``"+Inf"``)."""
    return float(v)


def parse_header_args(args: list[str]) -> list[tuple[str, str]]:
    """``--prometheus-header k=v`` (repeatable; a missing ``=`` means an empty value)."""
    out = []
    for h in args:
        k, _, v = h.partition("=")
        out.append((k, v))
    return out


class PrometheusClient:
    def __init__(self, url: str, *, ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, token_file: str | None = None,
                 headers: list[tuple[str, str]] | None = None, timeout: float = 5.0, verb: str = "GET"):
        self.base = url.rstrip("/")
        self.ca_file = ca_file
        self.cert_file = cert_file
        self.key_file = key_file
        self.token_file = token_file
        self.headers = list(headers or [])
        self.timeout = timeout
        self.verb = verb
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_mtime: float | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.base.startswith("https:"):
            return False
        ctx = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def check(self) -> None:
        """Fail early (``OSError``/``ssl.SSLError``/``ValueError``) on an unusable CA or token file."""
        self._ssl()
        self._bearer()

    def _bearer(self) -> str | None:
        """The token file's content, re-read when the file changes (projected tokens rotate)."""
        if not self.token_file:
            return None
        mtime = os.stat(self.token_file).st_mtime
        if mtime != self._token_mtime:
            with open(self.token_file, encoding="utf-8") as f:
                self._token = f.read().strip()
            self._token_mtime = mtime
        return self._token

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            conn = aiohttp.TCPConnector(ssl=self._ssl(), limit=64)
            self._session = aiohttp.ClientSession(connector=conn, json_serialize=lambda o: orjson.dumps(o).decode())
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _do(self, endpoint: str, params: list[tuple[str, str]]) -> Any:
        headers = {"User-Agent": f"extserver/{__version__}", "Accept": "application/json"}
        for k, v in self.headers:
            headers[k] = v
        try:
            token = self._bearer()
        except OSError as e:
            raise PrometheusUnavailable(f"cannot read the bearer token file: {e.strerror}") from None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url = self.base + endpoint
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        started = time.monotonic()
        try:
            session = self._get_session()
            if self.verb == "POST":
                req = session.post(url, data=params, headers=headers, timeout=timeout)
            else:
                req = session.get(url, params=params, headers=headers, timeout=timeout)
            async with req as resp:
                body = await resp.read()
                code = resp.status
        except asyncio.TimeoutError:
            raise PrometheusUnavailable(f"{self.verb} {url}: no answer within {self.timeout:g}s") from None
        except aiohttp.ClientError as e:
            raise PrometheusUnavailable(f"{self.verb} {url}: {_client_error_text(e)}") from None
        log.debug("%s %s %d (%.1f ms)", self.verb, url, code, (time.monotonic() - started) * 1000)
        # as upstream: codes other than 2xx, 400, 422 and 503 carry no API JSON
        if code // 100 != 2 and code not in (400, 422, 503):
            raise PrometheusUnavailable(f"{self.verb} {url}: unknown response code {code}") if code >= 500 \
                else PrometheusQueryError("bad_response", f"unknown response code {code}")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise PrometheusUnavailable(f"{self.verb} {url}: bad_response: {e}") from None
        if not isinstance(doc, dict):
            raise PrometheusQueryError("bad_response", "the response is not a JSON object")
        if doc.get("status") == "error":
            err = PrometheusQueryError(str(doc.get("errorType") or ""), str(doc.get("error") or ""))
            # overloaded or past its deadline ("execution: ... context deadline exceeded"), not a wrong query
            if code == 503 or err.error_type in ("timeout", "canceled") or "context deadline exceeded" in err.message:
                raise PrometheusUnavailable(str(err))
            raise err
        return doc.get("data")

    async def series(self, selectors: list[str], *, start: float | None = None,
                     end: float | None = None) -> list[dict[str, str]]:
        """``/api/v1/series``: the label sets (with ``__name__``) matching any selector."""
        params = [("match[]", s) for s in selectors]
        if start:
            params.append(("start", _fmt_time(start)))
        if end:
            params.append(("end", _fmt_time(end)))
        data = await self._do("/api/v1/series", params)
        if not isinstance(data, list):
            raise PrometheusQueryError("bad_response", "series data is not a list")
        return data

    async def query(self, query: str, *, at: float | None = None) -> QueryResult:
        """``/api/v1/query`` (an instant query at ``at``, default now)."""
        params = [("query", query), ("timeout", f"{max(1, int(self.timeout * 1000))}ms")]  # a model.Duration
        if at:
            params.append(("time", _fmt_time(at)))
        data = await self._do("/api/v1/query", params)
        if not isinstance(data, dict):
            raise PrometheusQueryError("bad_response", "query data is not an object")
        rtype = str(data.get("resultType") or "")
        result = data.get("result")
        out = QueryResult(rtype)
        try:
            if rtype == "vector":
                for s in result or []:
                    ts, v = s["value"]
                    out.samples.append(Sample(dict(s.get("metric") or {}), parse_sample_value(v), float(ts)))
            elif rtype == "scalar":
                ts, v = result
                out.samples.append(Sample({}, parse_sample_value(v), float(ts)))
            elif rtype not in ("matrix", "string"):
                raise PrometheusQueryError("bad_response", f"unexpected value type {rtype!r}")
        except (KeyError, TypeError, ValueError):
            raise PrometheusQueryError("bad_response", f"malformed {rtype} result") from None
        return out


def _fmt_time(t: float) -> str:
    """``model.Time.String()``: Unix seconds with millisecond precision."""
    ms = int(math.floor(t * 1000))
    return f"{ms // 1000}.{ms % 1000:03d}"


def _client_error_text(e: aiohttp.ClientError) -> str:
    if isinstance(e, aiohttp.ClientConnectorError):
        return f"cannot connect: {e.os_error.strerror or e.os_error}" if e.os_error else "cannot connect"
    if isinstance(e, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return str(e) or type(e).__name__
