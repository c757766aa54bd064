"""Sources for ``metrics.k8s.io``: the Python provider API of resource metrics, and the two
kinds of :class:`~.metrics_api.ObjectLister` (where the described pods and nodes come from).

A source of CPU/memory subclasses :class:`ResourceMetricsSource` and answers per object::

    class MySource(ResourceMetricsSource):
        window = 10.0                                   # seconds, the metrics' window

        async def pod_usage(self, pod):                 # None: no metrics for this pod
            return {"app": {"cpu": "250m", "memory": "64Mi"}}   # per container

        async def node_usage(self, node):
            return {"cpu": 1.5, "memory": 8 * 2**30}    # strings, numbers or Quantity

Values may be Quantity, strings ("250m") or numbers (cores, bytes). The objects come from
:class:`StaticObjects` (a source that knows its own pods/nodes) or :class:`ClusterObjects`
(an informer on the main apiserver's ``/api/v1/pods`` / ``/api/v1/nodes``, as metrics-server)."""
from __future__ import annotations

import asyncio
import datetime as _dt
import logging
from typing import Any, Mapping

from ..machinery.quantity import BINARY_SI, DECIMAL_SI, Quantity
from ..machinery.selectors import LabelSelector
from .metrics_api import ContainerMetrics, NodeMetrics, ObjectMeta, PodMetrics

log = logging.getLogger("extserver.providers")


def usage_quantities(usage: Mapping[str, Any]) -> dict[str, Quantity]:
    """A usage mapping with every value a Quantity; numbers are cores for ``cpu`` (DecimalSI,
    milli precision as metrics-server) and bytes for ``memory`` (BinarySI)."""
    out: dict[str, Quantity] = {}
    for k, v in usage.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if k == "memory":
                out[k] = Quantity.from_int(int(v), BINARY_SI)
            else:
                out[k] = Quantity.from_float(float(v), DECIMAL_SI)
        else:
            q = Quantity.coerce(v)
            out[k] = q
    return out


class ResourceMetricsSource:
    """A :class:`~.metrics_api.ResourceMetricsProvider` written per object: override
    :meth:`pod_usage` and/or :meth:`node_usage`. They are awaited one after the other (a task
    per pod would cost more than a lookup); a source that does I/O per request should override
    :meth:`get_pod_metrics` / :meth:`get_node_metrics` and answer the whole batch at once."""

    #: the window the usage was measured over, in seconds
    window: float = 30.0

    async def pod_usage(self, pod: ObjectMeta) -> Mapping[str, Mapping[str, Any]] | None:
        """Usage per container (``{"container": {"cpu": ..., "memory": ...}}``), or None."""
        return None

    async def node_usage(self, node: ObjectMeta) -> Mapping[str, Any] | None:
        """Usage of the node (``{"cpu": ..., "memory": ...}``), or None."""
        return None

    def now(self) -> _dt.datetime:
        """The ``timestamp`` of the metrics (default: now)."""
        return _dt.datetime.now(_dt.timezone.utc)

    async def get_pod_metrics(self, pods: list[ObjectMeta]) -> list[PodMetrics | None]:
        usages = [await self.pod_usage(p) for p in pods]
        ts = self.now()
        return [None if u is None else PodMetrics(ts, self.window, [
            ContainerMetrics(name, usage_quantities(cu)) for name, cu in u.items()]) for u in usages]

    async def get_node_metrics(self, nodes: list[ObjectMeta]) -> list[NodeMetrics | None]:
        usages = [await self.node_usage(n) for n in nodes]
        ts = self.now()
        return [None if u is None else NodeMetrics(ts, self.window, usage_quantities(u)) for u in usages]


class StaticObjects:
    """An :class:`~.metrics_api.ObjectLister` over objects the source itself knows (set them
    with :meth:`set`, drop them with :meth:`remove`)."""

    def __init__(self, objects: list[ObjectMeta] | None = None):
        self._objects: dict[tuple[str, str], ObjectMeta] = {}
        for o in objects or ():
            self.set(o)

    def set(self, obj: ObjectMeta) -> None:
        if obj.creation_timestamp is None:
            obj.creation_timestamp = _dt.datetime.now(_dt.timezone.utc)
        self._objects[(obj.namespace, obj.name)] = obj

    def remove(self, namespace: str, name: str) -> None:
        self._objects.pop((namespace, name), None)

    async def list(self, namespace: str, selector: LabelSelector | None) -> list[ObjectMeta]:
        return [o for (ns, _), o in sorted(self._objects.items())
                if (not namespace or ns == namespace) and (selector is None or selector.matches(o.labels))]

    async def get(self, namespace: str, name: str) -> ObjectMeta | None:
        return self._objects.get((namespace, name))


def _object_meta(obj: dict) -> tuple[ObjectMeta, bool]:
    """What PodMetrics/NodeMetrics copy from a core/v1 Pod or Node, and whether it counts: a
    pod only while Running (metrics-server's pod storage skips the others)."""
    md = obj.get("metadata") or {}
    ts = md.get("creationTimestamp")
    created = _dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc) if ts else None
    counts = obj.get("kind") != "Pod" or (obj.get("status") or {}).get("phase") == "Running"
    return ObjectMeta(str(md.get("name", "")), str(md.get("namespace") or ""), dict(md.get("labels") or {}),
                      created), counts


class ClusterObjects:
    """An :class:`~.metrics_api.ObjectLister` over the main apiserver's running pods (``resource
    = "pods"``) or nodes (``"nodes"``): a list+watch informer, as metrics-server's. A pod that
    exists but is not running has no metrics: its get is metrics-server's ``podmetrics`` 404. It starts
    with the server (``--kubeconfig``, or the in-cluster service account) and ``/readyz``
    waits for its first list; before that, requests are 503."""

    def __init__(self, resource: str, *, kubeconfig: str | None = None):
        if resource not in ("pods", "nodes"):
            raise ValueError(f"ClusterObjects lists pods or nodes, not {resource!r}")
        self.resource = resource
        self.kubeconfig = kubeconfig
        self.informer = None
        self._client = None
        self._started: asyncio.Future | None = None

    async def start(self, server: Any) -> None:
        # one lister may serve several groups (metrics.k8s.io and custom.metrics.k8s.io), whose
        # start hooks run concurrently: the first call starts the informer, all wait for it
        if self._started is None:
            self._started = asyncio.ensure_future(self._start(server))
        await asyncio.shield(self._started)

    async def _start(self, server: Any) -> None:
        from ..auth.informer import Informer
        from ..auth.kubeclient import KubeClient
        self._client = await KubeClient.load(self.kubeconfig or getattr(server, "kubeconfig", None))
        self.informer = Informer(self._client, f"/api/v1/{self.resource}", name=f"metrics-{self.resource}",
                                 transform=_object_meta)
        self.informer.start()
        await self.informer.synced.wait()

    async def stop(self) -> None:
        if self.informer is not None:
            await self.informer.stop()
        if self._client is not None:
            await self._client.close()

    def _store(self) -> dict:
        from .provider import SourceUnavailable
        if self.informer is None or not self.informer.synced.is_set():
            raise SourceUnavailable(f"the {self.resource} of the cluster are not listed yet")
        return self.informer.store

    async def list(self, namespace: str, selector: LabelSelector | None) -> list[ObjectMeta]:
        out = [o for o, counts in self._store().values() if counts and (not namespace or o.namespace == namespace)
               and (selector is None or selector.matches(o.labels))]
        out.sort(key=lambda o: (o.namespace, o.name))
        return out

    async def get(self, namespace: str, name: str) -> ObjectMeta | None:
        entry = self._store().get(f"{namespace}/{name}" if namespace else name)
        if entry is None:
            return None
        if not entry[1]:
            from ..machinery.errors import NotFound
            raise NotFound("metrics.k8s.io", "podmetrics", f"{namespace}/{name}")
        return entry[0]
