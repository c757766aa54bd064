"""The provider interfaces of the metrics APIs — what a metrics source implements.

They mirror ``sigs.k8s.io/custom-metrics-apiserver/pkg/provider`` (``CustomMetricsProvider``,
``ExternalMetricsProvider``, ``CustomMetricInfo``, ``ExternalMetricInfo``) and metrics-server's
``PodMetricsGetter``/``NodeMetricsGetter``, in Python: async methods, plain dataclasses.
Values are :class:`~extserver.machinery.quantity.Quantity`; the API layer renders the wire
shapes of each version (v1beta1/v1beta2) from these."""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..machinery.errors import StatusError
from ..machinery.quantity import Quantity
from ..machinery.selectors import LabelSelector


@dataclass(frozen=True, slots=True)
class GroupResource:
    """A Kubernetes resource: ``group`` is "" for the core group (``pods``, ``namespaces``)."""

    group: str
    resource: str

    def __str__(self) -> str:  # "pods", "deployments.apps"
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @classmethod
    def parse(cls, s: str) -> "GroupResource":
        """``schema.ParseGroupResource``: "deployments.apps" -> (apps, deployments); the
        resource is everything before the first dot."""
        resource, _, group = s.partition(".")
        return cls(group, resource)


@dataclass(frozen=True, slots=True)
class CustomMetricInfo:
    """One custom metric of one kind of object (``pods``/``requests_per_second``)."""

    group_resource: GroupResource
    namespaced: bool
    metric: str


@dataclass(frozen=True, slots=True)
class ExternalMetricInfo:
    metric: str


@dataclass(slots=True)
class ObjectReference:
    """``describedObject`` (core/v1 ObjectReference subset the metrics APIs use)."""

    kind: str
    name: str
    namespace: str = ""
    api_version: str = ""


@dataclass(slots=True)
class MetricValue:
    """One value of a custom metric for one object (``custom_metrics.MetricValue``).
    ``selector`` is the metric label selector the value was computed for (None: none)."""

    described_object: ObjectReference
    metric: str
    timestamp: _dt.datetime
    value: Quantity
    window_seconds: int | None = None
    selector: dict | None = None  # metav1.LabelSelector as a dict, e.g. {"matchLabels": {...}}


@dataclass(slots=True)
class ExternalMetricValue:
    metric_name: str
    timestamp: _dt.datetime
    value: Quantity
    metric_labels: dict[str, str] = field(default_factory=dict)
    window_seconds: int | None = None


class MetricNotFound(StatusError):
    """404 for a metric a provider does not have, in custom-metrics-apiserver's words
    (``provider.NewMetricNotFoundError`` / ``...ForError`` / ``...ForSelectorError``):
    without ``name`` for the metric itself, with it for one object, with ``selector`` (a
    non-empty metric label selector) for one object's series under that selector."""

    code, reason = 404, "NotFound"

    def __init__(self, resource: GroupResource | str, metric: str, name: str = "",
                 selector: LabelSelector | None = None):
        msg = f"the server could not find the metric {metric} for {resource}"
        if name:
            msg += f" {name}"
            if selector is not None:
                msg += f" with selector {selector}"
        super().__init__(msg)


@runtime_checkable
class CustomMetricsProvider(Protocol):
    """What ``custom.metrics.k8s.io`` serves. Raise ``MetricNotFound`` / the project's
    ``StatusError`` family for 404s; any other exception is a source failure (503)."""

    def list_all_metrics(self) -> list[CustomMetricInfo]:
        """The metrics served now (discovery lists one resource per entry; re-read on every
        discovery request, so a changing list refreshes discovery)."""
        ...

    async def get_metric_by_name(self, namespace: str, name: str, info: CustomMetricInfo,
                                 metric_selector: LabelSelector) -> MetricValue:
        """The metric of one object (``namespace`` "" for cluster-scoped objects)."""
        ...

    async def get_metric_by_selector(self, namespace: str, selector: LabelSelector, info: CustomMetricInfo,
                                     metric_selector: LabelSelector) -> list[MetricValue]:
        """The metric of every object matching ``selector`` (the ``name = *`` routes)."""
        ...


@runtime_checkable
class ExternalMetricsProvider(Protocol):
    def list_all_external_metrics(self) -> list[ExternalMetricInfo]:
        ...

    async def get_external_metric(self, namespace: str, metric_selector: LabelSelector,
                                  info: ExternalMetricInfo) -> list[ExternalMetricValue]:
        ...


# --- resource metrics (metrics.k8s.io) -------------------------------------------------------
@dataclass(slots=True)
class ObjectMeta:
    """The part of a pod or node the resource metrics API copies into its objects."""

    name: str
    namespace: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    creation_timestamp: _dt.datetime | None = None


@dataclass(slots=True)
class ContainerMetrics:
    name: str
    usage: dict[str, Quantity]  # "cpu", "memory"


@dataclass(slots=True)
class PodMetrics:
    timestamp: _dt.datetime
    window_seconds: float
    containers: list[ContainerMetrics]


@dataclass(slots=True)
class NodeMetrics:
    timestamp: _dt.datetime
    window_seconds: float
    usage: dict[str, Quantity]


@runtime_checkable
class ObjectLister(Protocol):
    """Where the pods or nodes that resource metrics describe come from: the cluster (an
    informer on the main apiserver, as metrics-server and prometheus-adapter use) or, for a
    self-contained source, the source itself."""

    async def list(self, namespace: str, selector: LabelSelector) -> list[ObjectMeta]:
        """``namespace`` "" means all namespaces (and is the only value for nodes)."""
        ...

    async def get(self, namespace: str, name: str) -> ObjectMeta | None:
        ...


@runtime_checkable
class ResourceMetricsProvider(Protocol):
    """metrics-server's ``PodMetricsGetter`` + ``NodeMetricsGetter``: one result per object
    given, in order; None where the source has no metrics for that object (it is then left
    out of lists and a 404 for a get, as metrics-server does)."""

    async def get_pod_metrics(self, pods: list[ObjectMeta]) -> list[PodMetrics | None]:
        ...

    async def get_node_metrics(self, nodes: list[ObjectMeta]) -> list[NodeMetrics | None]:
        ...
