"""``external.metrics.k8s.io/v1beta1`` over an
:class:`~extserver.providers.metrics_api.ExternalMetricsProvider`.

One route, as custom-metrics-apiserver installs it (``installer/emhandlers.go``):
``namespaces/{ns}/{metric}?labelSelector=...``, where ``labelSelector`` selects the metric's
series by their labels (``registry/external_metrics/reststorage.go``). Discovery lists one
namespaced ``ExternalMetricValueList`` resource per metric, computed per request."""
from __future__ import annotations

from ..machinery import errors as E
from .dynamic import DynamicGroup, DynamicRequest
from .metrics_api import ExternalMetricInfo, ExternalMetricsProvider, ExternalMetricValue, GroupResource, \
    MetricNotFound
from .wire import parse_label_selector, quantity_str, time_str

GROUP = "external.metrics.k8s.io"
VERSION = "v1beta1"


class ExternalMetricsAPI(DynamicGroup):
    def __init__(self, provider: ExternalMetricsProvider):
        super().__init__(GROUP, versions=[VERSION])
        self.provider = provider

    def api_resources(self, version: str) -> list[dict]:
        """``provider.NewExternalMetricResourceLister``."""
        return [{"name": i.metric, "singularName": "", "namespaced": True, "kind": "ExternalMetricValueList",
                 "verbs": ["get"]} for i in self.provider.list_all_external_metrics()]

    async def get(self, req: DynamicRequest) -> dict:
        if not req.namespace or len(req.parts) != 1:
            raise E.PathNotFound()
        if req.verb == "watch":  # ListResource without a watcher; the route's resource is "*"
            raise E.MethodNotSupported(GROUP, "*", "watch")
        metric = req.resource
        selector = parse_label_selector(req.query, "labelSelector")
        info = ExternalMetricInfo(metric)
        if info not in set(self.provider.list_all_external_metrics()):
            # prometheus-adapter's answer for a metric it has no series of (the resource part
            # of custom-metrics-apiserver's message is empty for external metrics)
            raise MetricNotFound(GroupResource("", ""), metric)
        values = await self.provider.get_external_metric(req.namespace, selector, info)
        return {"kind": "ExternalMetricValueList", "apiVersion": f"{GROUP}/{VERSION}", "metadata": {},
                "items": [_item(v) for v in values]}


def _item(m: ExternalMetricValue) -> dict:
    d = {"metricName": m.metric_name, "metricLabels": m.metric_labels, "timestamp": time_str(m.timestamp)}
    if m.window_seconds is not None:
        d["window"] = int(m.window_seconds)
    d["value"] = quantity_str(m.value)
    return d
