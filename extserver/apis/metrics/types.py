"""The kinds of ``metrics.k8s.io/v1beta1`` (k8s.io/metrics/pkg/apis/metrics/v1beta1/types.go),
wire-compatible with metrics-server: ``usage`` values are canonical Quantity strings,
``timestamp`` a metav1.Time, ``window`` a metav1.Duration (Go's ``time.Duration.String()``)."""
from __future__ import annotations

import datetime as _dt
from pydantic import Field

from ...api import KubeModel, KubeObject
from ...machinery.meta import ObjectMeta
from ...machinery.quantity import Quantity

def _meta_wire(md: ObjectMeta) -> dict:
    return {k: v for k, v in (("name", md.name), ("namespace", md.namespace),
                              ("creationTimestamp", md.creation_timestamp), ("labels", md.labels)) if v is not None}


def _usage_wire(usage: dict[str, Quantity]) -> dict[str, str]:
    return {k: str(v) for k, v in usage.items()}


class ContainerMetrics(KubeModel):
    """Resource usage of one container."""

    name: str = Field(description="Container name corresponding to the one from pod.spec.containers.")
    usage: dict[str, Quantity] = Field(default_factory=dict,
                                       description="The memory usage is the memory working set.")


class PodMetrics(KubeObject):
    """PodMetrics sets resource usage metrics of a pod."""

    timestamp: str = Field(default="", description="The following fields define time interval from which "
                                                   "metrics were collected from the interval [Timestamp-Window, "
                                                   "Timestamp].")
    window: str = "0s"
    containers: list[ContainerMetrics] = Field(default_factory=list,
                                               description="Metrics for all containers are collected within "
                                                           "the same time window.")

    def to_wire(self) -> dict:
        """Hand-written for speed (the hot path of ``kubectl top pod -A``); the same JSON as the
        generic dump of the metadata fields the metrics API sets."""
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": _meta_wire(self.metadata),
                "timestamp": self.timestamp, "window": self.window,
                "containers": [{"name": c.name, "usage": _usage_wire(c.usage)} for c in self.containers]}


class NodeMetrics(KubeObject):
    """NodeMetrics sets resource usage metrics of a node."""

    timestamp: str = Field(default="", description="The following fields define time interval from which "
                                                   "metrics were collected from the interval [Timestamp-Window, "
                                                   "Timestamp].")
    window: str = "0s"
    usage: dict[str, Quantity] = Field(default_factory=dict,
                                       description="The memory usage is the memory working set.")

    def to_wire(self) -> dict:
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": _meta_wire(self.metadata),
                "timestamp": self.timestamp, "window": self.window, "usage": _usage_wire(self.usage)}


def rfc3339(t: _dt.datetime) -> str:
    """metav1.Time's JSON: RFC 3339 in UTC, whole seconds."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return t.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` (what metav1.Duration marshals to): "10.5s", "1m0s",
    "1h0m0s", "500ms", "0s". Hand-written to match Go exactly; nanosecond resolution."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:  # below a second: the largest of ns, µs, ms that keeps a whole part
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _frac(ns, size) + unit
    h, rest = divmod(ns, 3600 * 10 ** 9)
    m, rest = divmod(rest, 60 * 10 ** 9)
    out = _frac(rest, 10 ** 9) + "s"
    if h or m:
        out = f"{m}m" + out
    if h:
        out = f"{h}h" + out
    return sign + out


def _frac(v: int, size: int) -> str:
    whole, frac = divmod(v, size)
    if not frac:
        return str(whole)
    digits = len(str(size)) - 1
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")
