"""Prometheus metrics in the text exposition format (version 0.0.4), as kube-apiserver
names them. A small registry, no dependency, cheap on the hot path: a labelled sample is
one dict lookup by a tuple of label values.

For other components (the authenticators, admission plugins ...)::

    hits = server.metrics.counter("authentication_token_cache_request_total",
                                  "Counter of token cache lookups.", ["status"])
    hits.labels(status="hit").inc()        # or hits.labels("hit").inc()
    server.metrics.add_collector(lambda: "my_metric 1\\n")   # text rendered at scrape time
"""
from __future__ import annotations

import bisect
import math
import os
import platform
from typing import Awaitable, Callable, Iterable, Sequence

from aiohttp import web

from ..filters.chain import RequestContext

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: kube's ``apiserver_request_duration_seconds`` buckets
REQUEST_DURATION_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0,
                            6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


class _Family:
    type = ""

    def __init__(self, name: str, help: str, labelnames: Sequence[str]):
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self._sorted = sorted(range(len(self.labelnames)), key=lambda i: self.labelnames[i])

    def _key(self, values: tuple[str, ...], kw: dict[str, str]) -> tuple[str, ...]:
        if kw:
            if values:
                raise ValueError("give label values by position or by name, not both")
            try:
                values = tuple(str(kw[n]) for n in self.labelnames)
            except KeyError as e:
                raise ValueError(f"{self.name}: missing label {e}") from None
            if len(kw) != len(self.labelnames):
                raise ValueError(f"{self.name}: unknown labels {sorted(set(kw) - set(self.labelnames))}")
        elif len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected {len(self.labelnames)} label values, got {len(values)}")
        return tuple(str(v) for v in values)

    def _labels(self, key: tuple[str, ...], extra: str = "") -> str:
        parts = [f'{self.labelnames[i]}="{_escape(key[i])}"' for i in self._sorted]
        if extra:
            parts.append(extra)
        return "{" + ",".join(parts) + "}" if parts else ""

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.type}"]

    def render(self) -> list[str]:
        raise NotImplementedError


class _Value:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = value


class Counter(_Family):
    """A monotonically increasing count, per label values."""

    type = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()):
        super().__init__(name, help, labelnames)
        self.children: dict[tuple[str, ...], _Value] = {}

    def labels(self, *values: str, **kw: str) -> _Value:
        return self.child(self._key(values, kw))

    def child(self, key: tuple[str, ...]) -> _Value:
        """The sample for exact label values (the hot path: no validation)."""
        c = self.children.get(key)
        if c is None:
            c = self.children[key] = _Value()
        return c

    def inc(self, amount: float = 1.0) -> None:
        self.child(()).inc(amount)

    def render(self) -> list[str]:
        return [f"{self.name}{self._labels(k)} {_num(c.value)}" for k, c in sorted(self.children.items())]


class Gauge(Counter):
    """A value that goes up and down, per label values."""

    type = "gauge"

    def dec(self, amount: float = 1.0) -> None:
        self.child(()).dec(amount)

    def set(self, value: float) -> None:
        self.child(()).set(value)


class _HistogramValue:
    __slots__ = ("buckets", "counts", "sum", "count")

    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, v)] += 1
        self.sum += v
        self.count += 1


class Histogram(_Family):
    """Observations in cumulative ``le`` buckets, with ``_sum`` and ``_count``."""

    type = "histogram"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = (),
                 buckets: Iterable[float] = REQUEST_DURATION_BUCKETS):
        super().__init__(name, help, labelnames)
        self.buckets = tuple(sorted(buckets))
        self.children: dict[tuple[str, ...], _HistogramValue] = {}

    def labels(self, *values: str, **kw: str) -> _HistogramValue:
        return self.child(self._key(values, kw))

    def child(self, key: tuple[str, ...]) -> _HistogramValue:
        c = self.children.get(key)
        if c is None:
            c = self.children[key] = _HistogramValue(self.buckets)
        return c

    def observe(self, v: float) -> None:
        self.child(()).observe(v)

    def render(self) -> list[str]:
        out = []
        for key, h in sorted(self.children.items()):
            cum = 0
            for le, n in zip(self.buckets + (math.inf,), h.counts):
                cum += n
                le_label = 'le="' + _num(le) + '"'
                out.append(f"{self.name}_bucket{self._labels(key, le_label)} {cum}")
            lab = self._labels(key)
            out.append(f"{self.name}_sum{lab} {repr(h.sum)}")
            out.append(f"{self.name}_count{lab} {h.count}")
        return out


Collector = Callable[[], str]


class MetricsRegistry:
    """The server's metrics; ``render()`` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}
        self._collectors: list[Collector] = []
        #: with ``--workers``: ``await gather(own_text)`` is the whole server's exposition
        self.gather: Callable[[str], Awaitable[str]] | None = None

    def _get(self, cls: type, name: str, help: str, labelnames: Sequence[str], **kw: object) -> _Family:
        f = self._families.get(name)
        if f is not None:
            if type(f) is not cls or f.labelnames != tuple(labelnames):
                raise ValueError(f"metric {name} is already registered with another type or labels")
            return f
        f = self._families[name] = cls(name, help, labelnames, **kw)
        return f

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        return self._get(Counter, name, help, labelnames)  # type: ignore[return-value]

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Gauge:
        return self._get(Gauge, name, help, labelnames)  # type: ignore[return-value]

    def histogram(self, name: str, help: str, labelnames: Sequence[str] = (),
                  buckets: Iterable[float] = REQUEST_DURATION_BUCKETS) -> Histogram:
        return self._get(Histogram, name, help, labelnames, buckets=buckets)  # type: ignore[return-value]

    def add_collector(self, collector: Collector) -> None:
        """``collector()`` returns Prometheus text appended to every scrape."""
        self._collectors.append(collector)

    def render(self) -> str:
        lines: list[str] = []
        for f in self._families.values():
            lines += f.header()
            lines += f.render()
        text = "\n".join(lines) + "\n"
        for c in self._collectors:
            extra = c()
            if extra:
                text += extra if extra.endswith("\n") else extra + "\n"
        return text

    def response(self, text: str | None = None) -> web.Response:
        resp = web.Response(text=self.render() if text is None else text)
        resp.headers["Content-Type"] = CONTENT_TYPE
        return resp

    async def scrape(self) -> web.Response:
        """The ``/metrics`` response: this process's metrics, or every worker's summed."""
        if self.gather is None:
            return self.response()
        return self.response(await self.gather(self.render()))


#: gauges that every worker reports for the same thing: the merged value is the smallest
_MERGE_MIN = frozenset({"process_start_time_seconds"})


def merge_expositions(texts: list[str]) -> str:
    """Several processes' expositions as one: a sample (name and labels) present in several
    is summed — counters, histogram buckets/sums/counts and gauges such as in-flight
    requests, watchers or memory add up across workers — except the gauges of
    ``_MERGE_MIN`` (a start time). Families and samples keep their first-seen order."""
    headers: dict[str, list[str]] = {}
    samples: dict[str, dict[str, float]] = {}
    family = ""
    for text in texts:
        for line in text.splitlines():
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split(" ", 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    family = parts[2]
                    h = headers.setdefault(family, [])
                    if len(h) < 2 and line not in h:
                        h.append(line)
                    samples.setdefault(family, {})
                continue
            key, _, value = line.rpartition(" ")
            try:
                v = float(value)
            except ValueError:
                continue
            fam = samples.setdefault(family, {})
            if key in fam:
                fam[key] = min(fam[key], v) if family in _MERGE_MIN else fam[key] + v
            else:
                fam[key] = v
    out: list[str] = []
    for name, fam in samples.items():
        out += headers.get(name, [])
        out += [f"{k} {_num(v)}" for k, v in fam.items()]
    return "\n".join(out) + "\n"


# --- request metrics -------------------------------------------------------------------------
_RESOURCE_VERBS = {"get": "GET", "list": "LIST", "watch": "WATCH", "create": "POST", "update": "PUT",
                   "patch": "PATCH", "delete": "DELETE", "deletecollection": "DELETECOLLECTION", "proxy": "PROXY"}
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT"})
_CONNECT_SUBRESOURCES = frozenset({"proxy", "attach", "exec", "portforward"})
_HEALTH_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
APPLY_PATCH = "application/apply-patch+yaml"


def metrics_verb(ctx: RequestContext) -> str:
    """kube's reported verb: GET, LIST, WATCH, POST, PUT, PATCH, APPLY, DELETE, ..."""
    info = ctx.info
    if info.is_resource_request:
        if info.subresource in _CONNECT_SUBRESOURCES:
            return "CONNECT"
        verb = _RESOURCE_VERBS.get(info.verb, "other")
        if verb == "PATCH" and ctx.request.headers.get("Content-Type", "").startswith(APPLY_PATCH):
            return "APPLY"
        return verb
    method = ctx.request.method
    return method if method in _HTTP_METHODS else "other"


def metrics_scope(ctx: RequestContext) -> str:
    """kube's ``CleanScope``: resource | namespace | cluster | ''."""
    info = ctx.info
    if info.name or info.verb == "create":
        return "resource"
    if info.namespace:
        return "namespace"
    return "cluster" if info.is_resource_request else ""


def dry_run_label(request: web.Request) -> str:
    if "dryRun" not in request.query_string:
        return ""
    values = sorted(set(request.query.getall("dryRun", [])))
    return "invalid" if any(v != "All" for v in values) else ",".join(values)


class RequestMetrics:
    """``apiserver_request_total`` and ``apiserver_request_duration_seconds``."""

    def __init__(self, registry: MetricsRegistry):
        self.total = registry.counter(
            "apiserver_request_total", "Counter of apiserver requests broken out for each verb, dry run value, "
            "group, version, resource, scope, component, and HTTP response code.",
            ("verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component", "code"))
        self.duration = registry.histogram(
            "apiserver_request_duration_seconds", "Response latency distribution in seconds for each verb, dry "
            "run value, group, version, resource, subresource, scope and component.",
            ("verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component"))

    def observe(self, ctx: RequestContext, known_resource: bool, code: int, seconds: float) -> None:
        """Record one request. Unknown resources are recorded without their (client-chosen)
        group/version/resource so that a scan of bogus URLs cannot grow the series."""
        info = ctx.info
        if known_resource:
            key = (metrics_verb(ctx), dry_run_label(ctx.request), info.api_group, info.api_version, info.resource,
                   info.subresource, metrics_scope(ctx), "apiserver")
        else:
            sub = info.path if info.path in _HEALTH_PATHS else ""
            key = (metrics_verb(ctx), "", "", "", "", sub, metrics_scope(ctx) if info.is_resource_request else "",
                   "apiserver")
        self.total.child(key + (str(code),)).inc()
        self.duration.child(key).observe(seconds)


def process_metrics(started: float) -> Collector:
    """``process_*`` metrics (Linux ``/proc``; start time and CPU elsewhere)."""
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    linux = platform.system() == "Linux"

    def collect() -> str:
        t = os.times()
        lines = ["# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
                 "# TYPE process_cpu_seconds_total counter",
                 f"process_cpu_seconds_total {repr(t.user + t.system)}",
                 "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
                 "# TYPE process_start_time_seconds gauge",
                 f"process_start_time_seconds {repr(started)}"]
        if linux:
            try:
                with open("/proc/self/statm", "rb") as f:  # procfs: memory, not disk
                    vm, rss = (int(x) for x in f.read().split()[:2])
                fds = len(os.listdir("/proc/self/fd"))
            except OSError:
                return "\n".join(lines) + "\n"
            lines += ["# HELP process_resident_memory_bytes Resident memory size in bytes.",
                      "# TYPE process_resident_memory_bytes gauge", f"process_resident_memory_bytes {rss * page}",
                      "# HELP process_virtual_memory_bytes Virtual memory size in bytes.",
                      "# TYPE process_virtual_memory_bytes gauge", f"process_virtual_memory_bytes {vm * page}",
                      "# HELP process_open_fds Number of open file descriptors.",
                      "# TYPE process_open_fds gauge", f"process_open_fds {fds}"]
        return "\n".join(lines) + "\n"

    return collect
