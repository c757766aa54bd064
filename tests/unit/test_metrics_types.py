"""metrics.k8s.io wire helpers: metav1.Duration's text (Go's time.Duration.String(), vectors
from Go's time package tests) and the PodMetrics/NodeMetrics JSON and Table rows."""
from __future__ import annotations

import pytest

from extserver.apis.metrics import metrics_group
from extserver.apis.metrics.types import ContainerMetrics, PodMetrics, go_duration
from extserver.machinery.meta import ObjectMeta
from extserver.machinery.quantity import Quantity
from extserver.providers.metrics_api import ObjectMeta as SourceMeta
from extserver.providers.resource_metrics import ResourceMetricsSource, StaticObjects

NS, US, MS, S, MIN, H = 1e-9, 1e-6, 1e-3, 1.0, 60.0, 3600.0


@pytest.mark.parametrize("seconds,text", [
    (0, "0s"), (1 * NS, "1ns"), (1100 * NS, "1.1µs"), (2200 * US, "2.2ms"), (3300 * MS, "3.3s"),
    (4 * MIN + 5 * S, "4m5s"), (4 * MIN + 5001 * MS, "4m5.001s"), (5 * H + 6 * MIN + 7001 * MS, "5h6m7.001s"),
    (8 * MIN + 1 * NS, "8m0.000000001s"), (-1 * NS, "-1ns"), (10.5, "10.5s"), (60, "1m0s"), (3600, "1h0m0s"),
    (0.5, "500ms"), (30, "30s"),
])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_pod_metrics_wire_form_matches_the_generic_dump() -> None:
    p = PodMetrics(api_version="metrics.k8s.io/v1beta1", kind="PodMetrics",
                   metadata=ObjectMeta(name="a", namespace="n", labels={"x": "y"}, creation_timestamp="2024-01-01T00:00:00Z"),
                   timestamp="2024-01-01T00:00:00Z", window="10s",
                   containers=[ContainerMetrics(name="c", usage={"cpu": Quantity.parse("0.25"), "memory": "1Gi"})])
    assert p.to_wire() == p.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert p.to_wire()["containers"] == [{"name": "c", "usage": {"cpu": "250m", "memory": "1Gi"}}]


class Source(ResourceMetricsSource):
    window = 15

    async def pod_usage(self, pod):
        return {"a": {"cpu": 0.1, "memory": 1024 ** 2}, "b": {"cpu": "150m", "memory": "3Mi"}}


async def test_pod_table_row_sums_containers_as_metrics_server() -> None:
    g = metrics_group(Source(), pods=StaticObjects([SourceMeta("p", "ns", {"app": "x"})]), nodes=StaticObjects())
    res = g.resources["pods"]
    [pod] = await res.provider.list("ns", None, None)
    cols = res.strategy.table_columns()
    assert [c.name for c in cols] == ["Name", "cpu", "memory", "Window"]
    assert [c.value(pod) for c in cols] == ["p", "250m", "4Mi", "15s"]
    assert [c.format for c in cols] == ["name", "quantity", "quantity", "duration"]
