"""Custom and external metrics from plain Python functions.

::

    custom = CustomMetrics()
    custom.objects("pods", pod_lister)            # where ``pods/*`` finds its objects

    @custom.metric("requests_per_second", resource="pods")
    async def requests_per_second(pods, selector):
        return [rates.get(p.name) for p in pods]    # one value (or None) per object

    external = ExternalMetrics()

    @external.metric("queue_messages_ready", labels=["queue"])
    async def queue_messages_ready(namespace, selector):
        return [Series({"queue": q}, n) for q, n in broker.depths().items()]

    groups = [CustomMetricsAPI(custom), ExternalMetricsAPI(external)]

A custom metric function receives the objects asked about (one for an Object metric, every
object the label selector matches for ``name = *``) and the metric label selector, and
returns a value per object — a sequence in the same order or a mapping by object name;
``None`` or a missing name means "no value" (left out of a list, 404 for a single object).
A value is a :class:`~extserver.machinery.quantity.Quantity`, a number, a quantity string
or a :class:`Sample`. An external metric function returns a value (one series without
labels) or :class:`Series`; series the selector does not match are dropped. Functions may
be ``async`` or plain. Declaring a ``labels`` schema makes a selector on any other label
match nothing without calling the function.

Both classes implement the provider protocols of :mod:`.metrics_api`, so they can be
served as they are, wrapped, or replaced by a hand-written provider (e.g. Prometheus)."""
from __future__ import annotations

import datetime as _dt
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from ..machinery.selectors import DOES_NOT_EXIST, NOT_EQUALS, NOT_IN, LabelSelector
from .mapper import ResourceMapper
from .metrics_api import CustomMetricInfo, ExternalMetricInfo, ExternalMetricValue, GroupResource, \
    MetricNotFound, MetricValue, ObjectLister, ObjectMeta
from .wire import label_selector_dict


@dataclass(slots=True)
class Sample:
    """A value with its own timestamp (default: now) and rate window in seconds."""

    value: Any
    timestamp: _dt.datetime | None = None
    window_seconds: int | None = None


@dataclass(slots=True)
class Series:
    """One labelled series of an external metric."""

    labels: dict[str, str]
    value: Any
    timestamp: _dt.datetime | None = None
    window_seconds: int | None = None


async def _call(fn: Callable, *args) -> Any:
    out = fn(*args)
    return await out if inspect.isawaitable(out) else out


def _selects_only(selector: LabelSelector, labels: tuple[str, ...] | None) -> bool:
    """False when a label schema is declared and ``selector`` requires a label outside it
    to be present (such a selector matches no series)."""
    if labels is None:
        return True
    known = set(labels)
    return all(r.key in known or r.operator in (DOES_NOT_EXIST, NOT_IN, NOT_EQUALS) for r in selector.requirements)


@dataclass(slots=True)
class _CustomMetric:
    info: CustomMetricInfo
    fn: Callable
    labels: tuple[str, ...] | None
    window_seconds: int | None
    objects: ObjectLister | None


class CustomMetrics:
    """A ``CustomMetricsProvider`` of decorated functions; see the module docstring."""

    def __init__(self, *, mapper: ResourceMapper | None = None):
        self.mapper = mapper or ResourceMapper()
        self._metrics: dict[CustomMetricInfo, _CustomMetric] = {}
        self._objects: dict[GroupResource, ObjectLister] = {}
        self._families: list[tuple[GroupResource, bool, Callable[[], Iterable[str]], Callable, int | None]] = []

    # --- declaring ----------------------------------------------------------------------
    def _resource(self, resource: str, namespaced: bool | None) -> tuple[GroupResource, bool]:
        gr = GroupResource.parse(resource)
        kind = self.mapper.lookup(gr)
        if kind is not None:
            return kind.group_resource, kind.namespaced if namespaced is None else namespaced
        if namespaced is None:
            raise ValueError(f"unknown resource {resource!r}: say namespaced=True/False "
                             "(or add its kind to the mapper)")
        return gr, namespaced

    def objects(self, resource: str, lister: ObjectLister) -> None:
        """Where the objects of ``resource`` come from for ``name = *`` requests (and their
        labels for a single object)."""
        self._objects[self._resource(resource, False)[0]] = lister

    def metric(self, name: str, *, resource: str, namespaced: bool | None = None,
               labels: Iterable[str] | None = None, window_seconds: int | None = None,
               objects: ObjectLister | None = None) -> Callable[[Callable], Callable]:
        """Declare metric ``name`` of ``resource`` (``pods``, ``namespaces``,
        ``deployments.apps`` ...) computed by the decorated function. ``namespaced`` comes
        from the mapper for known kinds; ``labels`` is the metric's label schema."""
        gr, ns = self._resource(resource, namespaced)
        info = CustomMetricInfo(gr, ns, name)

        def register(fn: Callable) -> Callable:
            self._metrics[info] = _CustomMetric(info, fn, tuple(labels) if labels is not None else None,
                                                window_seconds, objects)
            return fn
        return register

    def metric_family(self, *, resource: str, names: Callable[[], Iterable[str]], namespaced: bool | None = None,
                      window_seconds: int | None = None) -> Callable[[Callable], Callable]:
        """Declare every metric ``names()`` lists now (asked on each discovery and request,
        so the set may change); the function gets the metric name first."""
        gr, ns = self._resource(resource, namespaced)

        def register(fn: Callable) -> Callable:
            self._families.append((gr, ns, names, fn, window_seconds))
            return fn
        return register

    def remove(self, name: str, *, resource: str) -> None:
        gr = self.mapper.normalize(GroupResource.parse(resource))
        for info in [i for i in self._metrics if i.group_resource == gr and i.metric == name]:
            del self._metrics[info]

    # --- lifecycle (the listers that have one, e.g. ClusterObjects) -----------------------
    def _listers_with(self, method: str) -> list:
        found: dict[int, object] = {}
        for lister in [*self._objects.values(), *(m.objects for m in self._metrics.values())]:
            if lister is not None and callable(getattr(lister, method, None)):
                found.setdefault(id(lister), lister)
        return list(found.values())

    async def start(self, server) -> None:
        for lister in self._listers_with("start"):
            await lister.start(server)

    async def stop(self) -> None:
        for lister in self._listers_with("stop"):
            await lister.stop()

    # --- the provider protocol ----------------------------------------------------------
    def list_all_metrics(self) -> list[CustomMetricInfo]:
        out = list(self._metrics)
        for gr, ns, names, _fn, _w in self._families:
            out.extend(CustomMetricInfo(gr, ns, n) for n in names())
        return out

    def _find(self, info: CustomMetricInfo) -> _CustomMetric:
        m = self._metrics.get(info)
        if m is not None:
            return m
        for gr, ns, names, fn, window in self._families:
            if gr == info.group_resource and ns == info.namespaced and info.metric in set(names()):
                metric = info.metric
                return _CustomMetric(info, lambda objs, sel, f=fn: f(metric, objs, sel), None, window, None)
        raise MetricNotFound(info.group_resource, info.metric)

    def _lister(self, m: _CustomMetric) -> ObjectLister | None:
        return m.objects or self._objects.get(m.info.group_resource)

    async def get_metric_by_name(self, namespace: str, name: str, info: CustomMetricInfo,
                                 metric_selector: LabelSelector) -> MetricValue:
        m = self._find(info)
        missing = MetricNotFound(info.group_resource, info.metric, name,
                                 None if metric_selector.empty else metric_selector)
        if not _selects_only(metric_selector, m.labels):
            raise missing
        lister = self._lister(m)
        obj = await lister.get(namespace, name) if lister is not None else ObjectMeta(name, namespace)
        if obj is None:
            raise missing
        values = await self._values(m, [obj], metric_selector)
        if not values:
            raise missing
        return values[0]

    async def get_metric_by_selector(self, namespace: str, selector: LabelSelector, info: CustomMetricInfo,
                                     metric_selector: LabelSelector) -> list[MetricValue]:
        m = self._find(info)
        if not _selects_only(metric_selector, m.labels):
            return []
        lister = self._lister(m)
        if lister is None:  # nothing to enumerate the objects with
            raise MetricNotFound(info.group_resource, info.metric)
        objs = await lister.list(namespace, selector)
        return await self._values(m, objs, metric_selector) if objs else []

    async def _values(self, m: _CustomMetric, objs: list[ObjectMeta], metric_selector: LabelSelector
                      ) -> list[MetricValue]:
        out = await _call(m.fn, objs, metric_selector)
        pairs = zip(objs, [out.get(o.name) for o in objs] if isinstance(out, Mapping) else out)
        now = _dt.datetime.now(_dt.timezone.utc)
        sel = label_selector_dict(metric_selector)
        metric, ref, window = m.info.metric, self.mapper.references(m.info.group_resource), m.window_seconds
        result = []
        append = result.append  # a list over 1,000s of pods: kept lean
        for obj, v in pairs:
            if v is None:
                continue
            if type(v) is Sample:
                w = v.window_seconds if v.window_seconds is not None else window
                append(MetricValue(ref(obj.namespace, obj.name), metric, v.timestamp or now, v.value, w, sel))
            else:
                append(MetricValue(ref(obj.namespace, obj.name), metric, now, v, window, sel))
        return result


@dataclass(slots=True)
class _ExternalMetric:
    fn: Callable
    labels: tuple[str, ...] | None
    window_seconds: int | None


class ExternalMetrics:
    """An ``ExternalMetricsProvider`` of decorated functions; see the module docstring."""

    def __init__(self) -> None:
        self._metrics: dict[str, _ExternalMetric] = {}

    def metric(self, name: str, *, labels: Iterable[str] | None = None,
               window_seconds: int | None = None) -> Callable[[Callable], Callable]:
        def register(fn: Callable) -> Callable:
            self._metrics[name] = _ExternalMetric(fn, tuple(labels) if labels is not None else None, window_seconds)
            return fn
        return register

    def remove(self, name: str) -> None:
        self._metrics.pop(name, None)

    def list_all_external_metrics(self) -> list[ExternalMetricInfo]:
        return [ExternalMetricInfo(n) for n in self._metrics]

    async def get_external_metric(self, namespace: str, metric_selector: LabelSelector,
                                  info: ExternalMetricInfo) -> list[ExternalMetricValue]:
        m = self._metrics.get(info.metric)
        if m is None:
            raise MetricNotFound(GroupResource("", ""), info.metric)
        if not _selects_only(metric_selector, m.labels):
            return []
        out = await _call(m.fn, namespace, metric_selector)
        if out is None:
            return []
        series = out if isinstance(out, (list, tuple)) or inspect.isgenerator(out) else [Series({}, out)]
        now = _dt.datetime.now(_dt.timezone.utc)
        result = []
        for s in series:
            if not isinstance(s, Series):
                s = Series(*s)  # (labels, value) pairs
            if not metric_selector.matches(s.labels):
                continue
            window = s.window_seconds if s.window_seconds is not None else m.window_seconds
            result.append(ExternalMetricValue(info.metric, s.timestamp or now, s.value, dict(s.labels), window))
        return result
