"""``custom.metrics.k8s.io`` (v1beta2, preferred, and v1beta1) over a
:class:`~extserver.providers.metrics_api.CustomMetricsProvider`.

The routes and their reading are custom-metrics-apiserver's (``installer/cmhandlers.go``,
``endpoints/handlers/get.go``, ``registry/custom_metrics/reststorage.go``)::

    {resource}/{name}/{metric}                     cluster-scoped objects (or all namespaces)
    namespaces/{ns}/{resource}/{name}/{metric}     namespaced objects
    namespaces/{ns}/metrics/{metric}               the Namespace object itself

``name = *`` asks for every object matching ``labelSelector``; ``metricLabelSelector``
narrows the metric's own series. ``{resource}`` is normalised (plural, singular,
``resource.group``) with a :class:`~extserver.providers.mapper.ResourceMapper`, and a
metric the provider does not list is a 404 in custom-metrics-apiserver's words, so
providers are only asked for metrics they listed, by the info they listed. Discovery lists one
``MetricValueList`` resource per metric (``pods/requests_per_second``), computed per request."""
from __future__ import annotations

from ..machinery import errors as E
from ..machinery.selectors import FieldSelector
from .dynamic import DynamicGroup, DynamicRequest
from .mapper import ResourceMapper
from .metrics_api import CustomMetricInfo, CustomMetricsProvider, GroupResource, MetricNotFound, MetricValue
from .wire import object_reference, parse_label_selector, quantity_str, time_str

GROUP = "custom.metrics.k8s.io"
VERSIONS = ("v1beta2", "v1beta1")
ALL_OBJECTS = "*"


class CustomMetricsAPI(DynamicGroup):
    """The custom metrics API group of ``provider``. ``versions`` (priority order) may leave
    one out when another server in the cluster owns it."""

    def __init__(self, provider: CustomMetricsProvider, *, versions: tuple[str, ...] | list[str] = VERSIONS,
                 mapper: ResourceMapper | None = None):
        unknown = [v for v in versions if v not in VERSIONS]
        if unknown or not versions:
            raise ValueError(f"{GROUP} serves versions {', '.join(VERSIONS)}, not {unknown or 'none'}")
        super().__init__(GROUP, versions=list(versions))
        self.provider = provider
        self.mapper = mapper or getattr(provider, "mapper", None) or ResourceMapper()

    def bind(self, server) -> None:
        super().bind(server)
        self.mapper.add_groups(server.groups)

    # --- discovery ----------------------------------------------------------------------
    def api_resources(self, version: str) -> list[dict]:
        """``provider.NewCustomMetricResourceLister``: one entry per listed metric."""
        return [{"name": f"{i.group_resource}/{i.metric}", "singularName": "", "namespaced": i.namespaced,
                 "kind": "MetricValueList", "verbs": ["get"]} for i in self.provider.list_all_metrics()]

    # --- reads --------------------------------------------------------------------------
    async def get(self, req: DynamicRequest) -> dict:
        namespace, resource, name, metric = _target(req)
        q = req.query
        selector = parse_label_selector(q, "labelSelector")
        fsel = q.get("fieldSelector", "")
        if fsel:  # the handler treats the name as a field selector; another one must agree
            try:
                same = FieldSelector.parse(fsel).single_value("metadata.name") == name
            except ValueError as e:
                raise E.BadRequest(str(e)) from None
            if not same:
                raise E.BadRequest("fieldSelector metadata.name doesn't match requested name")
        metric_selector = parse_label_selector(q, "metricLabelSelector")
        gr = self.mapper.normalize(GroupResource.parse(resource))
        info = self._listed().get(CustomMetricInfo(gr, namespace != "", metric))
        if info is None:
            raise MetricNotFound(gr, metric)
        if name == ALL_OBJECTS:
            values = await self.provider.get_metric_by_selector(namespace, selector, info, metric_selector)
        else:
            value = await self.provider.get_metric_by_name(namespace, name, info, metric_selector)
            if value is None:
                raise MetricNotFound(gr, metric, name)
            values = [value]
        item = _item_v1beta2 if req.version == "v1beta2" else _item_v1beta1
        times: dict = {}  # the items of one answer mostly share one timestamp
        return {"kind": "MetricValueList", "apiVersion": f"{GROUP}/{req.version}", "metadata": {},
                "items": [item(v, times) for v in values]}

    def _listed(self) -> dict[CustomMetricInfo, CustomMetricInfo]:
        """The provider's metrics by their normalised info: the provider is asked with the
        info it listed, whichever spelling of the resource the request used."""
        norm = self.mapper.normalize
        return {CustomMetricInfo(norm(i.group_resource), i.namespaced, i.metric): i
                for i in self.provider.list_all_metrics()}


def _target(req: DynamicRequest) -> tuple[str, str, str, str]:
    """(namespace, resource, name, metric) of a request, or the errors custom-metrics-apiserver
    gives: 404 for a path none of its three routes matches, 400 ``invalid request path`` for
    one that matches a route but names no metric (``namespaces/{ns}/{metric}``)."""
    segments = (["namespaces", req.namespace] if req.namespace else []) + list(req.parts)
    n = len(segments)
    routed = n == 3 or (n == 5 and segments[0] == "namespaces") or (
        n == 4 and segments[0] == "namespaces" and segments[2] == "metrics")
    if not routed:
        raise E.PathNotFound()
    namespace, resource, name, metric, parts = req.namespace, req.resource, req.name, req.subresource, req.parts
    if namespace and resource == "metrics":  # metrics describing the namespace itself
        namespace, resource, name, metric = "", "namespaces", namespace, name
        parts = ["namespaces", name] + list(parts[1:])
    if len(parts) < 3:
        raise E.BadRequest("invalid request path")
    return namespace, resource, name or ALL_OBJECTS, metric


def _item_v1beta2(m: MetricValue, times: dict) -> dict:
    ts = times.get(m.timestamp) or times.setdefault(m.timestamp, time_str(m.timestamp))
    d = {"describedObject": object_reference(m.described_object),
         "metric": {"name": m.metric, "selector": m.selector}, "timestamp": ts}
    if m.window_seconds is not None:
        d["windowSeconds"] = int(m.window_seconds)
    d["value"] = quantity_str(m.value)
    return d


def _item_v1beta1(m: MetricValue, times: dict) -> dict:
    ts = times.get(m.timestamp) or times.setdefault(m.timestamp, time_str(m.timestamp))
    d = {"describedObject": object_reference(m.described_object), "metricName": m.metric, "timestamp": ts}
    if m.window_seconds is not None:
        d["window"] = int(m.window_seconds)
    d["value"] = quantity_str(m.value)
    d["selector"] = m.selector
    return d
