"""Series discovery: every ``--metrics-relist-interval`` the rules' ``seriesQuery``s are sent
to ``/api/v1/series`` (over the last ``--metrics-max-age``; one request per distinct query,
concurrently), filtered and named, and the metrics served are replaced at once.

As upstream, a failed relist keeps the last good list (so a short Prometheus outage does not
empty discovery); unlike upstream it retries sooner than the interval after a failure
(every :data:`RETRY_AFTER_FAILURE` seconds at most), so a recovered Prometheus is seen
quickly.

Readiness (``/readyz/prometheus-series-relist``): failing before the first successful relist
and when the last success is older than :data:`STALE_INTERVALS` relist intervals — so an
outage shorter than that never flaps the APIService away, a long one says what fails."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from ...machinery.selectors import LabelSelector
from ..metrics_api import CustomMetricInfo, ExternalMetricInfo
from .client import PrometheusClient, PrometheusError
from ..mapper import ResourceMapper
from .naming import NAMESPACES, NODES, PERSISTENT_VOLUMES, MetricNamer

log = logging.getLogger("extserver.prometheus")

STALE_INTERVALS = 3
RETRY_AFTER_FAILURE = 5.0


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    series_name: str
    namer: MetricNamer


def named_series(per_namer: list[tuple[MetricNamer, list[dict[str, str]]]]):
    """(rule, series, series name, metric name) of every series its rule can name."""
    for namer, series in per_namer:
        for s in series:
            name = s.get("__name__", "")
            metric = namer.metric_name_for_series(name)
            if metric is None:
                log.warning("unable to name series %r with rule %s, skipping", name, namer.rule.where)
                continue
            yield namer, s, name, metric


class CustomSeriesRegistry:
    """``basicSeriesRegistry``: custom metric -> (series, rule)."""

    def __init__(self, mapper: ResourceMapper):
        self.mapper = mapper
        self.info: dict[CustomMetricInfo, SeriesInfo] = {}
        self.metrics: list[CustomMetricInfo] = []

    def set_series(self, per_namer: list[tuple[MetricNamer, list[dict[str, str]]]]) -> None:
        info: dict[CustomMetricInfo, SeriesInfo] = {}
        for namer, s, name, metric in named_series(per_namer):
            labels = {k: v for k, v in s.items() if k != "__name__"}
            resources, namespaced = namer.converter.resources_for_series(labels)
            for gr in resources:
                ns = namespaced and gr not in (NAMESPACES, NODES, PERSISTENT_VOLUMES)
                info[CustomMetricInfo(gr, ns, metric)] = SeriesInfo(name, namer)
        self.info = info
        self.metrics = list(info)

    def normalized(self, info: CustomMetricInfo) -> CustomMetricInfo:
        return CustomMetricInfo(self.mapper.normalize(info.group_resource), info.namespaced, info.metric)

    def lookup(self, info: CustomMetricInfo) -> SeriesInfo | None:
        return self.info.get(self.normalized(info))

    def query_for_metric(self, info: CustomMetricInfo, namespace: str, metric_selector: LabelSelector | None,
                         names: list[str]) -> tuple[str, SeriesInfo] | None:
        """The query for ``names`` (None: not a metric we serve). Raises QueryBuildError."""
        if not names:
            return None
        si = self.lookup(info)
        if si is None:
            return None
        gr = self.normalized(info).group_resource
        return si.namer.query.build(si.series_name, gr, namespace, [], metric_selector, names), si


class ExternalSeriesRegistry:
    """``externalSeriesRegistry``: external metric name -> (series, rule)."""

    def __init__(self) -> None:
        self.info: dict[str, SeriesInfo] = {}
        self.metrics: list[ExternalMetricInfo] = []

    def set_series(self, per_namer: list[tuple[MetricNamer, list[dict[str, str]]]]) -> None:
        info: dict[str, SeriesInfo] = {}
        for namer, _, name, metric in named_series(per_namer):
            info[metric] = SeriesInfo(name, namer)
        self.info = info
        self.metrics = [ExternalMetricInfo(m) for m in info]

    def query_for_metric(self, namespace: str, metric: str, metric_selector: LabelSelector | None) -> str | None:
        si = self.info.get(metric)
        if si is None:
            return None
        return si.namer.query.build_external(si.series_name, namespace, metric_selector)


def distinct_label_sets(series: list[dict[str, str]]) -> list[dict[str, str]]:
    """One series per (name, label names): only those decide a metric's name and resources
    (upstream strips the label values the same way), so 10,000 series of one metric cost
    one naming step, not 10,000."""
    seen: dict[tuple, dict[str, str]] = {}
    for s in series:
        key = (s.get("__name__", ""), frozenset(s))
        if key not in seen:
            seen[key] = s
    return list(seen.values())


class SeriesRelister:
    """The periodic relist for both registries, and its readiness."""

    def __init__(self, client: PrometheusClient, custom: list[MetricNamer], external: list[MetricNamer],
                 custom_registry: CustomSeriesRegistry, external_registry: ExternalSeriesRegistry, *,
                 interval: float, max_age: float):
        self.client = client
        self.custom = custom
        self.external = external
        self.custom_registry = custom_registry
        self.external_registry = external_registry
        self.interval = interval
        self.max_age = max_age
        self.last_success: float | None = None  # monotonic
        self.last_error = ""
        self.last_duration = 0.0
        self._task: asyncio.Task | None = None

    async def relist(self) -> None:
        """One relist; raises PrometheusError (the registries keep their last content)."""
        started = time.monotonic()
        start = time.time() - self.max_age
        namers = self.custom + self.external
        selectors = list(dict.fromkeys(n.series_query for n in namers))
        results = await asyncio.gather(*(self.client.series([s], start=start) for s in selectors),
                                       return_exceptions=True)
        by_query: dict[str, list[dict[str, str]]] = {}
        for sel, res in zip(selectors, results):
            if isinstance(res, BaseException):
                raise res
            by_query[sel] = distinct_label_sets(res)
        self.custom_registry.set_series([(n, n.filter_series(by_query[n.series_query])) for n in self.custom])
        self.external_registry.set_series([(n, n.filter_series(by_query[n.series_query])) for n in self.external])
        self.last_duration = time.monotonic() - started
        self.last_success = time.monotonic()
        self.last_error = ""

    async def relist_logged(self) -> bool:
        try:
            await self.relist()
            return True
        except PrometheusError as e:
            self.last_error = str(e)
            log.warning("unable to update list of all metrics: %s", e)
            return False

    async def run(self) -> None:
        while True:
            ok = await self.relist_logged()
            await asyncio.sleep(self.interval if ok else min(self.interval, RETRY_AFTER_FAILURE))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="prometheus-series-relist")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.client.close()

    def ready(self) -> tuple[bool, str]:
        if self.last_success is None:
            return False, f"no successful series relist yet: {self.last_error or 'in progress'}"
        age = time.monotonic() - self.last_success
        if age > STALE_INTERVALS * self.interval:
            return False, (f"last successful series relist {age:.0f}s ago (more than {STALE_INTERVALS} "
                           f"relist intervals): {self.last_error}")
        return True, ""
