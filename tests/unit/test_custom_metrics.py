"""The custom/external metrics API layer without a server: resource-name normalisation, the
routes' reading, metric label selectors in LabelSelector form, the Python provider API and the
aggregated-discovery conversion of dynamic groups."""
from __future__ import annotations

import datetime as dt

import pytest

from extserver.machinery import errors as E
from extserver.machinery.selectors import LabelSelector
from extserver.providers.custom_metrics import CustomMetricsAPI, _target
from extserver.providers.dynamic import DynamicRequest
from extserver.providers.external_metrics import ExternalMetricsAPI
from extserver.providers.mapper import ResourceKind, ResourceMapper
from extserver.providers.metrics_api import GroupResource, MetricNotFound, ObjectMeta
from extserver.providers.python_metrics import CustomMetrics, ExternalMetrics, Sample, Series
from extserver.providers.resource_metrics import StaticObjects
from extserver.providers.wire import label_selector_dict, time_str
from extserver.server.discovery import aggregated_from_api_resources


@pytest.mark.parametrize("given,want", [
    ("pods", ("", "pods")), ("pod", ("", "pods")), ("Pods", ("", "pods")),
    ("deployments.apps", ("apps", "deployments")),
    ("deployment.apps", ("apps", "deployments")), ("deployments", ("apps", "deployments")),
    ("ingress", ("networking.k8s.io", "ingresses")), ("networkpolicies", ("networking.k8s.io", "networkpolicies")),
    ("endpoints", ("", "endpoints")), ("widgets.example.com", ("example.com", "widgets")),
    ("deployments.v1.apps", ("v1.apps", "deployments")),  # the group is everything after the first dot
])
def test_resource_names_normalise_as_the_restmapper(given, want):
    assert ResourceMapper().normalize(GroupResource.parse(given)) == GroupResource(*want)


def test_reference_for_and_added_kinds():
    m = ResourceMapper()
    ref = m.reference_for(GroupResource("", "pods"), "ns", "p")
    assert (ref.kind, ref.namespace, ref.name, ref.api_version) == ("Pod", "ns", "p", "/v1")
    ref = m.reference_for(GroupResource("", "nodes"), "ignored", "n")
    assert (ref.kind, ref.namespace, ref.api_version) == ("Node", "", "/v1")
    m.add(ResourceKind("example.com", "v1", "Widget", "widgets", "widget", True))
    assert m.normalize(GroupResource("", "widget")) == GroupResource("example.com", "widgets")
    assert m.reference_for(GroupResource("example.com", "widgets"), "ns", "w").api_version == "example.com/v1"


def req(namespace: str, parts: list[str], **query) -> DynamicRequest:
    return DynamicRequest("v1beta2", "get", namespace, parts[0] if parts else "", parts[1] if len(parts) > 1 else "",
                          parts[2] if len(parts) > 2 else "", parts, query)


def test_routes_are_read_as_custom_metrics_apiserver_does():
    assert _target(req("ns", ["pods", "*", "rps"])) == ("ns", "pods", "*", "rps")
    assert _target(req("", ["nodes", "n1", "temp"])) == ("", "nodes", "n1", "temp")
    assert _target(req("ns", ["metrics", "depth"])) == ("", "namespaces", "ns", "depth")
    with pytest.raises(E.BadRequest, match="invalid request path"):
        _target(req("ns", ["depth"]))  # namespaces/ns/depth
    for bad in (req("ns", ["pods", "x"]), req("", ["pods", "x"]), req("", ["a", "b", "c", "d"]),
                req("ns", ["pods", "x", "m", "extra"])):
        with pytest.raises(E.PathNotFound):
            _target(bad)


@pytest.mark.parametrize("sel,want", [
    ("", None), ("a=b", {"matchLabels": {"a": "b"}}), ("a==b,c!=d", {"matchLabels": {"a": "b"}, "matchExpressions": [
        {"key": "c", "operator": "NotIn", "values": ["d"]}]}),
    ("x in (2,1),!y,z", {"matchExpressions": [{"key": "x", "operator": "In", "values": ["1", "2"]},
                                              {"key": "y", "operator": "DoesNotExist"},
                                              {"key": "z", "operator": "Exists"}]}),
])
def test_metric_selector_in_label_selector_form(sel, want):
    assert label_selector_dict(LabelSelector.parse(sel)) == want


def test_time_is_rfc3339_utc_seconds():
    t = dt.datetime(2026, 1, 2, 4, 5, 6, 789, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert time_str(t) == "2026-01-02T02:05:06Z"
    assert time_str(dt.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05Z"


def provider() -> CustomMetrics:
    cm = CustomMetrics()
    cm.objects("pods", StaticObjects([ObjectMeta("a", "ns", {"app": "x"}), ObjectMeta("b", "ns", {"app": "x"}),
                                      ObjectMeta("c", "ns", {"app": "y"})]))

    @cm.metric("rps", resource="pod")
    def rps(objects, selector):  # plain function, a list aligned with the objects
        return [{"a": 1.5, "b": None, "c": "3"}[o.name] for o in objects]

    @cm.metric("depth", resource="namespaces", labels=["queue"])
    async def depth(objects, selector):  # async, a mapping by name, a Sample with a window
        return {o.name: Sample(7, window_seconds=30) for o in objects}

    return cm


async def test_python_custom_metrics():
    cm = provider()
    api = CustomMetricsAPI(cm)
    assert [r["name"] for r in api.api_resources("v1beta2")] == ["pods/rps", "namespaces/depth"]
    doc = await api.get(req("ns", ["pods", "*", "rps"], labelSelector="app=x"))
    assert [(i["describedObject"]["name"], i["value"]) for i in doc["items"]] == [("a", "1500m")]  # b: no value
    doc = await api.get(req("ns", ["metrics", "depth"], metricLabelSelector="queue=q1"))
    [item] = doc["items"]
    assert (item["windowSeconds"], item["value"]) == (30, "7")
    assert item["metric"]["selector"] == {"matchLabels": {"queue": "q1"}}
    with pytest.raises(MetricNotFound, match="the server could not find the metric depth for namespaces ns "
                                             "with selector other=1"):
        await api.get(req("ns", ["metrics", "depth"], metricLabelSelector="other=1"))
    with pytest.raises(MetricNotFound, match="^the server could not find the metric rps for pods b$"):
        await api.get(req("ns", ["pods", "b", "rps"]))
    with pytest.raises(MetricNotFound, match="^the server could not find the metric rps for pods zz$"):
        await api.get(req("ns", ["pods", "zz", "rps"]))  # not an object the lister knows
    cm.remove("rps", resource="pods")
    with pytest.raises(MetricNotFound, match="^the server could not find the metric rps for pods$"):
        await api.get(req("ns", ["pods", "a", "rps"]))


async def test_metric_family_follows_its_names():
    names = ["m1"]
    cm = CustomMetrics()
    cm.objects("pods", StaticObjects([ObjectMeta("a", "ns")]))

    @cm.metric_family(resource="pods", names=lambda: names)
    async def fam(metric, objects, selector):
        return [len(metric)] * len(objects)

    api = CustomMetricsAPI(cm)
    assert [r["name"] for r in api.api_resources("v1beta1")] == ["pods/m1"]
    names.append("m22")
    assert [r["name"] for r in api.api_resources("v1beta1")] == ["pods/m1", "pods/m22"]
    doc = await api.get(DynamicRequest("v1beta1", "get", "ns", "pods", "a", "m22", ["pods", "a", "m22"], {}))
    assert doc["items"][0]["metricName"] == "m22" and doc["items"][0]["value"] == "3"


def test_unknown_resource_needs_a_scope():
    with pytest.raises(ValueError, match="unknown resource"):
        CustomMetrics().metric("m", resource="gadgets.example.com")
    cm = CustomMetrics()
    cm.metric("m", resource="gadgets.example.com", namespaced=True)(lambda o, s: [])
    assert [str(i.group_resource) for i in cm.list_all_metrics()] == ["gadgets.example.com"]


async def test_python_external_metrics():
    em = ExternalMetrics()

    @em.metric("queue", labels=["q"])
    async def queue(namespace, selector):
        return [Series({"q": "a"}, 1), ({"q": "b"}, "2k")]

    @em.metric("scalar")
    def scalar(namespace, selector):
        return 0.5

    api = ExternalMetricsAPI(em)
    r = DynamicRequest("v1beta1", "list", "ns", "queue", "", "", ["queue"], {"labelSelector": "q!=a"})
    assert [(i["metricLabels"], i["value"]) for i in (await api.get(r))["items"]] == [({"q": "b"}, "2k")]
    r = DynamicRequest("v1beta1", "list", "ns", "scalar", "", "", ["scalar"], {})
    assert [(i["metricLabels"], i["value"]) for i in (await api.get(r))["items"]] == [({}, "500m")]
    r = DynamicRequest("v1beta1", "list", "ns", "queue", "", "", ["queue"], {"labelSelector": "other=1"})
    assert (await api.get(r))["items"] == []
    with pytest.raises(E.MethodNotSupported):
        await api.get(DynamicRequest("v1beta1", "watch", "ns", "queue", "", "", ["queue"], {}))


def test_aggregated_conversion_of_a_dynamic_group():
    common = {"singularName": "", "namespaced": True, "verbs": ["get"]}
    entries = [{"name": "pods/rps", "kind": "MetricValueList"} | common,
               {"name": "pods/lat", "kind": "MetricValueList"} | common,
               {"name": "q", "kind": "ExternalMetricValueList"} | common]
    doc = aggregated_from_api_resources("g", [("v1", entries)])
    [v] = doc["versions"]
    assert [r["resource"] for r in v["resources"]] == ["q", "pods"]
    assert [s["subresource"] for s in v["resources"][1]["subresources"]] == ["rps", "lat"]
    assert v["resources"][1]["responseKind"] == {"group": "", "version": "", "kind": ""}


async def test_a_kind_of_the_served_groups_by_any_spelling():
    from extserver.apis.wardle import group as wardle

    class Server:  # what bind() uses of the server
        groups = [wardle]
        shutdown_hooks: list = []

        def add_post_start_hook(self, name, hook):
            pass

    cm = CustomMetrics()  # declared before the server (and so the mapper) knows the kind

    @cm.metric("size", resource="flunders", namespaced=True)
    def size(objects, selector):
        return [len(o.name) for o in objects]

    api = CustomMetricsAPI(cm)
    api.bind(Server())
    for spelling in ("flunders", "flunder", "flunders.wardle.example.com", "Flunder.wardle.example.com"):
        doc = await api.get(req("ns", [spelling, "abc", "size"]))
        assert doc["items"][0]["value"] == "3"
        assert doc["items"][0]["describedObject"] == {"kind": "Flunder", "namespace": "ns", "name": "abc",
                                                      "apiVersion": "wardle.example.com/v1beta1"}
