"""The custom and external metrics providers over Prometheus (prometheus-adapter's
``pkg/custom-provider`` and ``pkg/external-provider``), implementing the framework's
:class:`~extserver.providers.metrics_api.CustomMetricsProvider` and
:class:`~extserver.providers.metrics_api.ExternalMetricsProvider`.

Answers as upstream's: a metric no rule discovered, or ``name = *`` matching no object ->
404 ``the server could not find the metric M for R``; one object Prometheus has no sample
for -> 404 ``... for R NAME``; ``name = *`` where only some objects have samples -> those
objects (an empty list when none has); an external query with no series -> an empty list.
Values are ``int64(v * 1000)`` milli-units, canonical (``16m``, ``20500m`` -> ``20500m``)."""
from __future__ import annotations

import datetime as _dt
import logging
from typing import Callable

from ...machinery import errors as E
from ...machinery.quantity import DECIMAL_SI, Quantity
from ...machinery.selectors import LabelSelector
from ..mapper import ResourceMapper
from ..metrics_api import (CustomMetricInfo, ExternalMetricInfo, ExternalMetricValue, GroupResource, MetricNotFound,
                           MetricValue, ObjectLister)
from ..wire import label_selector_dict
from .client import PrometheusClient, PrometheusError, Sample
from .discovery import CustomSeriesRegistry, ExternalSeriesRegistry
from .errors import milli, status_for
from .naming import NAMESPACES, PODS, QueryBuildError

log = logging.getLogger("extserver.prometheus")

#: where ``name = *`` finds the objects of a resource (None: no cluster connection)
ListerFor = Callable[[GroupResource], ObjectLister | None]


def _ts(sample: Sample) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(sample.timestamp, _dt.timezone.utc)


async def run_query(client: PrometheusClient, query: str) -> list[Sample]:
    """An instant query that must return a vector; errors as the client should see them."""
    try:
        res = await client.query(query)
    except PrometheusError as e:
        log.warning("unable to fetch metrics from prometheus: %s (query %r)", e, query)
        raise status_for(e) from None
    if res.result_type != "vector":
        raise E.InternalError(f"unable to fetch metrics from Prometheus: expected a vector, got {res.result_type}")
    return res.samples


class PrometheusCustomMetrics:
    """``custom.metrics.k8s.io`` from the ``rules`` of the adapter configuration."""

    def __init__(self, client: PrometheusClient, registry: CustomSeriesRegistry, mapper: ResourceMapper,
                 lister_for: ListerFor):
        self.client = client
        self.registry = registry
        self.mapper = mapper
        self.lister_for = lister_for

    def list_all_metrics(self) -> list[CustomMetricInfo]:
        return self.registry.metrics

    # the pod informer behind ``pods/*`` starts and stops with the server (the framework
    # calls these; the informer is shared with metrics.k8s.io and starts once)
    async def start(self, server) -> None:
        lister = self.lister_for(PODS)
        if lister is not None and callable(getattr(lister, "start", None)):
            await lister.start(server)

    async def stop(self) -> None:
        lister = self.lister_for(PODS)
        if lister is not None and callable(getattr(lister, "stop", None)):
            await lister.stop()

    def _value(self, value: float, sample: Sample, namespace: str, name: str, info: CustomMetricInfo,
               metric_selector: LabelSelector) -> MetricValue:
        return MetricValue(described_object=self.mapper.reference_for(info.group_resource, namespace, name),
                           metric=info.metric, timestamp=_ts(sample),
                           value=Quantity.from_milli(milli(value), DECIMAL_SI),
                           selector=label_selector_dict(metric_selector) if metric_selector is not None else None)

    async def _query(self, info: CustomMetricInfo, namespace: str, metric_selector: LabelSelector,
                     names: list[str]) -> tuple[dict[str, Sample], str]:
        """Samples by object name, and the resource label used."""
        try:
            built = self.registry.query_for_metric(info, namespace, metric_selector, names)
        except QueryBuildError as e:  # upstream logs it and answers "not found"
            log.info("unable to construct query for metric %s: %s", info.metric, e)
            built = None
        if built is None:
            raise MetricNotFound(info.group_resource, info.metric)
        query, si = built
        samples = await run_query(self.client, query)
        label = si.namer.converter.label_for_resource(self.registry.normalized(info).group_resource)
        return {s.labels.get(label, ""): s for s in samples}, query

    async def get_metric_by_name(self, namespace: str, name: str, info: CustomMetricInfo,
                                 metric_selector: LabelSelector) -> MetricValue:
        by_name, _ = await self._query(info, namespace, metric_selector, [name])
        sample = by_name.get(name)
        if sample is None:
            raise MetricNotFound(info.group_resource, info.metric, name)
        return self._value(sample.value, sample, namespace, name, info, metric_selector)

    async def get_metric_by_selector(self, namespace: str, selector: LabelSelector, info: CustomMetricInfo,
                                     metric_selector: LabelSelector) -> list[MetricValue]:
        gr = self.registry.normalized(info).group_resource
        lister = self.lister_for(gr)
        if lister is None:
            raise E.ServiceUnavailable(f"unable to list matching resources: no connection to the cluster to list "
                                       f"{gr} (start the server with --kubeconfig or in a cluster)")
        objects = await lister.list(namespace if gr != NAMESPACES else "", selector)
        names = [o.name for o in objects]
        if not names:  # upstream: no names -> no query -> not found
            raise MetricNotFound(info.group_resource, info.metric)
        by_name, _ = await self._query(info, namespace, metric_selector, names)
        return [self._value(by_name[n].value, by_name[n], namespace, n, info, metric_selector)
                for n in names if n in by_name]


class PrometheusExternalMetrics:
    """``external.metrics.k8s.io`` from the ``externalRules``."""

    def __init__(self, client: PrometheusClient, registry: ExternalSeriesRegistry):
        self.client = client
        self.registry = registry

    def list_all_external_metrics(self) -> list[ExternalMetricInfo]:
        return self.registry.metrics

    async def get_external_metric(self, namespace: str, metric_selector: LabelSelector,
                                  info: ExternalMetricInfo) -> list[ExternalMetricValue]:
        try:
            query = self.registry.query_for_metric(namespace, info.metric, metric_selector)
        except QueryBuildError as e:
            raise E.InternalError(f"unable to generate a query for the metric: {e}") from None
        if query is None:
            # upstream's selectGroupResource: "namespaces" only for the default namespace
            raise MetricNotFound(NAMESPACES if namespace == "default" else GroupResource("", ""), info.metric)
        try:
            res = await self.client.query(query)
        except PrometheusError as e:
            log.warning("unable to fetch metrics from prometheus: %s (query %r)", e, query)
            raise status_for(e) from None
        if res.result_type not in ("vector", "scalar"):
            raise E.InternalError("unable to fetch metrics from Prometheus: encountered an unexpected query "
                                  f"result type {res.result_type!r}")
        return [ExternalMetricValue(metric_name=info.metric, timestamp=_ts(s),
                                    value=Quantity.from_milli(milli(s.value), DECIMAL_SI), metric_labels=dict(s.labels))
                for s in res.samples]
