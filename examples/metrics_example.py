"""A runnable metrics server from a small in-process source:
``extserver serve --api-module examples.metrics_example``.

Resource metrics (``metrics.k8s.io``, what ``kubectl top`` reads): the source below knows its
own pods and nodes (:class:`StaticObjects`) and makes up stable numbers for them. A real source
would read cgroups, the kubelet or a TSDB, and list the cluster's pods with ``ClusterObjects``.

The numbers can be changed from outside with ``EXAMPLE_METRICS_FILE``: a JSON file
``{"pods": [{"namespace", "name", "labels", "containers": {c: {"cpu", "memory"}}}],
"nodes": [{"name", "labels", "usage": {...}}], "custom": {...}, "external": {...}, "fail": "",
"sleep": 0}`` re-read on every request (the end-to-end tests drive the server with it). With
``EXAMPLE_OBJECTS=cluster`` the pods and nodes are the main apiserver's (``--kubeconfig``).

Custom metrics (``custom.metrics.k8s.io``, the HPA's Pods and Object metrics) and external
metrics (``external.metrics.k8s.io``) are decorated functions of the same source, below."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from extserver.apis.metrics import metrics_group
from extserver.providers.custom_metrics import CustomMetricsAPI
from extserver.providers.external_metrics import ExternalMetricsAPI
from extserver.providers.metrics_api import ObjectMeta
from extserver.providers.provider import SourceUnavailable
from extserver.providers.python_metrics import CustomMetrics, ExternalMetrics, Series
from extserver.providers.resource_metrics import ClusterObjects, ResourceMetricsSource, StaticObjects

DEFAULT = {
    "pods": [
        {"namespace": "default", "name": "web-1", "labels": {"app": "web"},
         "containers": {"nginx": {"cpu": "120m", "memory": "48Mi"}, "sidecar": {"cpu": "5m", "memory": "12Mi"}}},
        {"namespace": "default", "name": "db-0", "labels": {"app": "db"},
         "containers": {"postgres": {"cpu": "350m", "memory": "512Mi"}}},
    ],
    "nodes": [{"name": "node-a", "labels": {"kubernetes.io/os": "linux"}, "usage": {"cpu": "1200m", "memory": "6Gi"}}],
}


class ExampleSource(ResourceMetricsSource):
    """Usage from ``EXAMPLE_METRICS_FILE`` (or :data:`DEFAULT`); ``fail`` makes it raise
    SourceUnavailable ("unavailable") or a plain exception ("crash"); ``sleep`` delays it."""

    window = 10.5

    def __init__(self) -> None:
        self.pods = StaticObjects()
        self.nodes = StaticObjects()
        self._data: dict = {}
        self._pod_usage: dict = {}
        self._node_usage: dict = {}
        self._mtime = -1.0
        self.reload()

    def reload(self) -> dict:
        path = os.environ.get("EXAMPLE_METRICS_FILE")
        if path:
            mtime = Path(path).stat().st_mtime_ns
            if mtime != self._mtime:
                self._mtime = mtime
                self._set(json.loads(Path(path).read_text()))
        elif not self._data:
            self._set(DEFAULT)
        return self._data

    def _set(self, data: dict) -> None:
        self._data = data
        self.pods = StaticObjects([ObjectMeta(p["name"], p["namespace"], dict(p.get("labels") or {}))
                                   for p in data.get("pods", [])])
        self.nodes = StaticObjects([ObjectMeta(n["name"], "", dict(n.get("labels") or {}))
                                    for n in data.get("nodes", [])])
        self._pod_usage = {(p["namespace"], p["name"]): p.get("containers") for p in data.get("pods", [])}
        self._node_usage = {n["name"]: n.get("usage") for n in data.get("nodes", [])}

    async def _check(self) -> dict:
        data = self.reload()
        if data.get("sleep"):
            await asyncio.sleep(float(data["sleep"]))
        if data.get("fail") == "unavailable":
            raise SourceUnavailable("the example metrics source is down")
        if data.get("fail") == "crash":
            raise RuntimeError("boom: a bug in the provider")
        return data

    # one check (reload, injected failure) per request, then a lookup per object
    async def get_pod_metrics(self, pods):
        await self._check()
        return await super().get_pod_metrics(pods)

    async def get_node_metrics(self, nodes):
        await self._check()
        return await super().get_node_metrics(nodes)

    async def pod_usage(self, pod: ObjectMeta):
        return self._pod_usage.get((pod.namespace, pod.name))

    async def node_usage(self, node: ObjectMeta):
        return self._node_usage.get(node.name)


class _Objects:
    """The source's current pods or nodes (the source swaps its StaticObjects on reload)."""

    def __init__(self, source: ExampleSource, attr: str):
        self.source, self.attr = source, attr

    async def list(self, namespace, selector):
        self.source.reload()
        return await getattr(self.source, self.attr).list(namespace, selector)

    async def get(self, namespace, name):
        self.source.reload()
        return await getattr(self.source, self.attr).get(namespace, name)


source = ExampleSource()
if os.environ.get("EXAMPLE_OBJECTS") == "cluster":
    # the pods and nodes of the main apiserver (--kubeconfig / in-cluster), numbers from the source
    pods, nodes = ClusterObjects("pods"), ClusterObjects("nodes")
else:
    pods, nodes = _Objects(source, "pods"), _Objects(source, "nodes")
resource_metrics = metrics_group(source, pods=pods, nodes=nodes)

# --- custom.metrics.k8s.io and external.metrics.k8s.io -------------------------------------
# The values come from the file's "custom" section ({"<resource>/<metric>": {"<ns>/<name>" or
# "<name>": value}}) and "external" section ({"<metric>": [{"labels": {...}, "value": v}]}),
# or from CUSTOM_DEFAULT / EXTERNAL_DEFAULT. Every "pods/<metric>" key of the file that is not
# declared below is served too (a metric family: add a key and discovery lists it).
CUSTOM_DEFAULT = {
    "pods/requests_per_second": {"default/web-1": "1500m", "default/db-0": 0.25},
    "namespaces/queue_depth": {"default": 12},
    "deployments.apps/http_requests": {"default/web": 42},
    "nodes/temperature_celsius": {"node-a": 61},
}
EXTERNAL_DEFAULT = {
    "queue_messages_ready": [{"labels": {"queue": "orders"}, "value": 30},
                             {"labels": {"queue": "billing"}, "value": "7"}],
}

custom = CustomMetrics()
custom.objects("pods", pods)  # pods/* finds its pods (and their labels) in the source


async def _custom_values(resource: str, metric: str) -> dict:
    data = await source._check()
    return (data.get("custom") or CUSTOM_DEFAULT).get(f"{resource}/{metric}", {})


def _key(obj: ObjectMeta) -> str:
    return f"{obj.namespace}/{obj.name}" if obj.namespace else obj.name


@custom.metric("requests_per_second", resource="pods", window_seconds=60)
async def requests_per_second(objects: list[ObjectMeta], selector):
    """The Pods metric of an HPA: one value per pod the HPA's label selector matches."""
    values = await _custom_values("pods", "requests_per_second")
    return [values.get(f"{p.namespace}/{p.name}") for p in objects]


@custom.metric("queue_depth", resource="namespaces")
async def queue_depth(objects: list[ObjectMeta], selector):
    """A metric of the Namespace object itself (``namespaces/<ns>/metrics/queue_depth``)."""
    values = await _custom_values("namespaces", "queue_depth")
    return {ns.name: values[ns.name] for ns in objects if ns.name in values}


@custom.metric("http_requests", resource="deployments.apps", labels=["method"])
async def http_requests(objects: list[ObjectMeta], selector):
    """An Object metric of a Deployment; its label schema is ``method`` (``metricLabelSelector``)."""
    values = await _custom_values("deployments.apps", "http_requests")
    return [values.get(_key(d)) for d in objects]


@custom.metric("temperature_celsius", resource="nodes")
async def temperature_celsius(objects: list[ObjectMeta], selector):
    """A metric of a cluster-scoped object (``nodes/<name>/temperature_celsius``)."""
    values = await _custom_values("nodes", "temperature_celsius")
    return [values.get(n.name) for n in objects]


_DECLARED = {"requests_per_second"}


def _extra_pod_metrics() -> list[str]:
    keys = source.reload().get("custom") or CUSTOM_DEFAULT
    return [k.split("/", 1)[1] for k in keys if k.startswith("pods/") and k.split("/", 1)[1] not in _DECLARED]


@custom.metric_family(resource="pods", names=_extra_pod_metrics)
async def extra_pod_metric(metric: str, objects: list[ObjectMeta], selector):
    values = await _custom_values("pods", metric)
    return [values.get(_key(p)) for p in objects]


external = ExternalMetrics()


@external.metric("queue_messages_ready", labels=["queue"])
async def queue_messages_ready(namespace: str, selector):
    """An External metric: one series per queue; the HPA's selector picks the queue."""
    data = await source._check()
    series = (data.get("external") or EXTERNAL_DEFAULT).get("queue_messages_ready", [])
    return [Series(s.get("labels") or {}, s["value"]) for s in series]


#: what ``--api-module`` serves
groups = [resource_metrics, CustomMetricsAPI(custom), ExternalMetricsAPI(external)]
