"""``metrics.k8s.io/v1beta1`` (what ``kubectl top`` reads), served from a
:class:`~extserver.providers.metrics_api.ResourceMetricsProvider` as metrics-server serves it:

* ``pods`` (PodMetrics, namespaced) and ``nodes`` (NodeMetrics, cluster-scoped), get and list
  (label and field selectors), read-only; the pods/nodes come from an ``ObjectLister``, the
  numbers from the provider, one PodMetrics per object the provider has metrics for;
* ``metadata``: name, namespace, the labels of the pod/node and ``creationTimestamp`` set to
  the time of the request (metrics-server's choice: the object is made now);
* Table columns as metrics-server's ``ConvertToTable``: Name, one per resource (``cpu``,
  ``memory``; a pod's summed over its containers), Window.

Usage::

    group = metrics_group(MySource(), pods=StaticObjects([...]), nodes=StaticObjects([...]))
"""
from __future__ import annotations

import datetime as _dt

from ...api import APIGroup, Strategy, TableColumn
from ...machinery import errors as E
from ...machinery.meta import ObjectMeta as WireMeta
from ...machinery.quantity import Quantity
from ...machinery.selectors import FieldSelector, LabelSelector
from ...providers import metrics_api as M
from ...providers.provider import Provider
from .types import ContainerMetrics, NodeMetrics, PodMetrics, go_duration, rfc3339

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"

__all__ = ["GROUP", "VERSION", "metrics_group", "PodMetrics", "NodeMetrics", "ContainerMetrics"]


def _metadata(o: M.ObjectMeta, now: str) -> WireMeta:
    return WireMeta(name=o.name, namespace=o.namespace or None, labels=dict(o.labels) or None,
                    creation_timestamp=now)


class _Memo:
    """``fn`` remembered for the last argument (the values repeat across one answer's objects)."""

    __slots__ = ("fn", "arg", "out")

    def __init__(self, fn):
        self.fn, self.arg, self.out = fn, object(), None

    def __call__(self, arg):
        if arg != self.arg:
            self.arg, self.out = arg, self.fn(arg)
        return self.out


def _usage_column(resource: str, usage) -> TableColumn:
    return TableColumn(resource, lambda obj: str(usage(obj).get(resource, Quantity())), format="quantity")


def _pod_usage(pod: PodMetrics) -> dict[str, Quantity]:
    total: dict[str, Quantity] = {}
    for c in pod.containers:
        for k, v in c.usage.items():
            total[k] = total.get(k, Quantity()) + v
    return total


class _MetricsStrategy(Strategy):
    def __init__(self, usage):
        self._usage = usage

    def table_columns(self) -> list[TableColumn]:
        return [TableColumn("Name", lambda o: o.metadata.name, format="name", description="Name of the resource"),
                _usage_column("cpu", self._usage), _usage_column("memory", self._usage),
                TableColumn("Window", lambda o: o.window, format="duration")]


class _ListerLifecycle:
    """Start and stop the object lister (and the metrics source) with the server when they
    have a lifecycle (e.g. :class:`~extserver.providers.resource_metrics.ClusterObjects`)."""

    metrics: M.ResourceMetricsProvider
    lister: M.ObjectLister

    async def start(self, server) -> None:
        for part in (self.lister, self.metrics):
            fn = getattr(part, "start", None)
            if fn is not None:
                await fn(server)

    async def stop(self) -> None:
        for part in (self.lister, self.metrics):
            fn = getattr(part, "stop", None)
            if fn is not None:
                await fn()


class PodMetricsProvider(_ListerLifecycle, Provider[PodMetrics]):
    """metrics-server's pod storage over a ResourceMetricsProvider and a pod lister."""

    def __init__(self, metrics: M.ResourceMetricsProvider, pods: M.ObjectLister):
        self.metrics = metrics
        self.pods = self.lister = pods

    async def _objects(self, pods: list[M.ObjectMeta]) -> list[PodMetrics]:
        if not pods:
            return []
        ms = await self.metrics.get_pod_metrics(pods)
        now = rfc3339(_dt.datetime.now(_dt.timezone.utc))
        ts, win = _Memo(rfc3339), _Memo(go_duration)  # a source's metrics share their timestamp
        return [PodMetrics(api_version=API_VERSION, kind="PodMetrics", metadata=_metadata(p, now),
                           timestamp=ts(m.timestamp), window=win(m.window_seconds),
                           containers=[ContainerMetrics(name=c.name, usage=c.usage) for c in m.containers])
                for p, m in zip(pods, ms) if m is not None]

    async def list(self, namespace: str, label_selector: LabelSelector | None,
                   field_selector: FieldSelector | None) -> list[PodMetrics]:
        return await self._objects(await self.pods.list(namespace, label_selector))

    async def get(self, namespace: str, name: str) -> PodMetrics | None:
        pod = await self.pods.get(namespace, name)
        if pod is None:  # the pod lister's NotFound, returned as is (as metrics-server)
            raise E.NotFound("", "pods", name)
        objs = await self._objects([pod])
        if not objs:  # metrics-server's storage is installed as "podmetrics"
            raise E.NotFound(GROUP, "podmetrics", f"{namespace}/{name}")
        return objs[0]


class NodeMetricsProvider(_ListerLifecycle, Provider[NodeMetrics]):
    """metrics-server's node storage over a ResourceMetricsProvider and a node lister."""

    def __init__(self, metrics: M.ResourceMetricsProvider, nodes: M.ObjectLister):
        self.metrics = metrics
        self.nodes = self.lister = nodes

    async def _objects(self, nodes: list[M.ObjectMeta]) -> list[NodeMetrics]:
        if not nodes:
            return []
        ms = await self.metrics.get_node_metrics(nodes)
        now = rfc3339(_dt.datetime.now(_dt.timezone.utc))
        ts, win = _Memo(rfc3339), _Memo(go_duration)
        return [NodeMetrics(api_version=API_VERSION, kind="NodeMetrics", metadata=_metadata(n, now),
                            timestamp=ts(m.timestamp), window=win(m.window_seconds), usage=m.usage)
                for n, m in zip(nodes, ms) if m is not None]

    async def list(self, namespace: str, label_selector: LabelSelector | None,
                   field_selector: FieldSelector | None) -> list[NodeMetrics]:
        return await self._objects(await self.nodes.list("", label_selector))

    async def get(self, namespace: str, name: str) -> NodeMetrics | None:
        node = await self.nodes.get("", name)
        if node is None:  # the typed node lister's NotFound
            raise E.NotFound("", "node", name)
        objs = await self._objects([node])
        if not objs:
            raise E.NotFound(GROUP, "nodemetrics", name)
        return objs[0]


def metrics_group(metrics: M.ResourceMetricsProvider, *, pods: M.ObjectLister,
                  nodes: M.ObjectLister) -> APIGroup:
    """The ``metrics.k8s.io`` group serving ``metrics``' numbers for the objects of ``pods``
    and ``nodes`` (each an ObjectLister: the cluster's, or the source's own)."""
    g = APIGroup(GROUP, versions=[VERSION])
    pr = g.resource("pods", hub=PodMetrics, kind="PodMetrics", singular="", namespaced=True,
                    strategy=_MetricsStrategy(_pod_usage), provider=PodMetricsProvider(metrics, pods))
    pr.version(VERSION)
    nr = g.resource("nodes", hub=NodeMetrics, kind="NodeMetrics", singular="", namespaced=False,
                    strategy=_MetricsStrategy(lambda n: n.usage), provider=NodeMetricsProvider(metrics, nodes))
    nr.version(VERSION)
    return g
