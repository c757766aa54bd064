"""``metrics.k8s.io`` (``kubectl top``) from the ``resourceRules`` (prometheus-adapter's
``pkg/resourceprovider``), implementing
:class:`~extserver.providers.metrics_api.ResourceMetricsProvider`.

For pods, one ``containerQuery`` per resource (cpu, memory) and namespace, grouped by the
pod label and ``containerLabel``; for nodes one ``nodeQuery`` per resource. A pod or node
with no CPU or no memory sample gets no metrics (left out, as upstream); a container with
only one of the two gets 0 for the other; NaN and negative samples count as 0. ``window`` is
the rule's. Unlike upstream, which logs a failed query and answers with nothing, a
Prometheus that is down is a 503 and a refused query a 500, so ``kubectl top`` says why."""
from __future__ import annotations

import asyncio
import datetime as _dt
import math

from ...machinery.quantity import BINARY_SI, DECIMAL_SI, Quantity
from ..mapper import ResourceMapper
from ..metrics_api import ContainerMetrics, GroupResource, NodeMetrics, ObjectMeta, PodMetrics
from .client import PrometheusClient, Sample
from .config import ResourceRule, ResourceRules
from .errors import milli
from .naming import NODES, PODS, MetricsQuery, ResourceConverter
from .provider import run_query


class _ResourceQuery:
    def __init__(self, rule: ResourceRule, mapper: ResourceMapper):
        self.converter = ResourceConverter(rule.resources, mapper)
        self.container_query = MetricsQuery(rule.container_query, self.converter)
        self.node_query = MetricsQuery(rule.node_query, self.converter)
        self.container_label = rule.container_label

    async def run(self, client: PrometheusClient, gr: GroupResource, namespace: str,
                  names: list[str]) -> dict[str, list[Sample]]:
        """Samples by object name (every sample of a pod: one per container)."""
        if gr == NODES:
            q = self.node_query.build("", gr, namespace, [], None, names)
        else:
            q = self.container_query.build("", gr, namespace, [self.container_label], None, names)
        label = self.converter.label_for_resource(gr)
        out: dict[str, list[Sample]] = {}
        for s in await run_query(client, q):
            if math.isnan(s.value) or s.value < 0:
                s.value = 0.0
            out.setdefault(s.labels.get(label, ""), []).append(s)
        return out


def _cpu(v: float) -> Quantity:
    return Quantity.from_milli(milli(v), DECIMAL_SI)


def _memory(v: float) -> Quantity:
    return Quantity.from_milli(milli(v), BINARY_SI)


def _utc(ts: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)


class PrometheusResourceMetrics:
    def __init__(self, client: PrometheusClient, rules: ResourceRules, mapper: ResourceMapper):
        self.client = client
        self.cpu = _ResourceQuery(rules.cpu, mapper)
        self.memory = _ResourceQuery(rules.memory, mapper)
        self.window = rules.window

    async def _both(self, gr: GroupResource, namespace: str, names: list[str]):
        return await asyncio.gather(self.cpu.run(self.client, gr, namespace, names),
                                    self.memory.run(self.client, gr, namespace, names))

    async def get_pod_metrics(self, pods: list[ObjectMeta]) -> list[PodMetrics | None]:
        if not pods:
            return []
        by_ns: dict[str, list[str]] = {}
        for p in pods:
            by_ns.setdefault(p.namespace, []).append(p.name)
        namespaces = list(by_ns)
        results = await asyncio.gather(*(self._both(PODS, ns, by_ns[ns]) for ns in namespaces))
        per_ns = dict(zip(namespaces, results))
        return [self._pod(p, *per_ns[p.namespace]) for p in pods]

    def _pod(self, pod: ObjectMeta, cpu: dict[str, list[Sample]], mem: dict[str, list[Sample]]) -> PodMetrics | None:
        cpu_samples, mem_samples = cpu.get(pod.name), mem.get(pod.name)
        if not cpu_samples or not mem_samples:
            return None
        containers: dict[str, dict[str, Quantity]] = {}
        earliest = math.inf
        for s in cpu_samples:
            containers.setdefault(s.labels.get(self.cpu.container_label, ""), {})["cpu"] = _cpu(s.value)
            earliest = min(earliest, s.timestamp)
        for s in mem_samples:
            containers.setdefault(s.labels.get(self.memory.container_label, ""), {})["memory"] = _memory(s.value)
            earliest = min(earliest, s.timestamp)
        for usage in containers.values():
            usage.setdefault("cpu", Quantity.from_milli(0, BINARY_SI))
            usage.setdefault("memory", Quantity.from_milli(0, BINARY_SI))
        return PodMetrics(timestamp=_utc(earliest), window_seconds=self.window,
                          containers=[ContainerMetrics(name, {"cpu": u["cpu"], "memory": u["memory"]})
                                      for name, u in sorted(containers.items())])

    async def get_node_metrics(self, nodes: list[ObjectMeta]) -> list[NodeMetrics | None]:
        if not nodes:
            return []
        cpu, mem = await self._both(NODES, "", [n.name for n in nodes])
        out: list[NodeMetrics | None] = []
        for n in nodes:
            c, m = cpu.get(n.name), mem.get(n.name)
            if not c or not m:
                out.append(None)
                continue
            out.append(NodeMetrics(timestamp=_utc(min(c[0].timestamp, m[0].timestamp)), window_seconds=self.window,
                                   usage={"cpu": _cpu(c[0].value), "memory": _memory(m[0].value)}))
        return out
