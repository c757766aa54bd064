"""A runnable metrics server from a small in-process source:
``extserver serve --api-module examples.metrics_example``.

Resource metrics (``metrics.k8s.io``, what ``kubectl top`` reads): the source below knows its
own pods and nodes (:class:`StaticObjects`) and makes up stable numbers for them. A real source
would read cgroups, the kubelet or a TSDB, and list the cluster's pods with ``ClusterObjects``.

The numbers can be changed from outside with ``EXAMPLE_METRICS_FILE``: a JSON file
``{"pods": [{"namespace", "name", "labels", "containers": {c: {"cpu", "memory"}}}],
"nodes": [{"name", "labels", "usage": {...}}], "fail": "", "sleep": 0}`` re-read on every
request (the end-to-end tests drive the server with it)."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from extserver.apis.metrics import metrics_group
from extserver.providers.metrics_api import ObjectMeta
from extserver.providers.provider import SourceUnavailable
from extserver.providers.resource_metrics import ResourceMetricsSource, StaticObjects

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

    async def _check(self) -> dict:
        data = self.reload()
        if data.get("sleep"):
            await asyncio.sleep(float(data["sleep"]))
        if data.get("fail") == "unavailable":
            raise SourceUnavailable("the example metrics source is down")
        if data.get("fail") == "crash":
            raise RuntimeError("boom: a bug in the provider")
        return data

    async def pod_usage(self, pod: ObjectMeta):
        data = await self._check()
        for p in data.get("pods", []):
            if p["namespace"] == pod.namespace and p["name"] == pod.name:
                return p.get("containers")
        return None

    async def node_usage(self, node: ObjectMeta):
        data = await self._check()
        for n in data.get("nodes", []):
            if n["name"] == node.name:
                return n.get("usage")
        return None


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
resource_metrics = metrics_group(source, pods=_Objects(source, "pods"), nodes=_Objects(source, "nodes"))

#: what ``--api-module`` serves (the custom and external metrics groups join this list)
groups = [resource_metrics]
