"""prometheus-adapter's configuration format: upstream's own documented files load unchanged;
strictness and the one-line errors; naming (``as`` defaults, Go's ``$`` expansion, filters);
the queries built from a request, as upstream's ``pkg/naming`` builds them."""
from __future__ import annotations

from pathlib import Path

import pytest

from extserver.machinery.selectors import LabelSelector
from extserver.providers.mapper import ResourceMapper
from extserver.providers.metrics_api import GroupResource
from extserver.providers.prometheus.config import ConfigError, load, loads, parse_prometheus_duration
from extserver.providers.prometheus.discovery import CustomSeriesRegistry, ExternalSeriesRegistry
from extserver.providers.prometheus.naming import MetricNamer, QueryBuildError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "prometheus_adapter"


# --- upstream's documented configurations ----------------------------------------------------------
def test_walkthrough_config_loads():
    cfg = load(str(FIXTURES / "walkthrough-config.yaml"))
    (rule,) = cfg.rules
    assert rule.series_query == 'http_requests_total{kubernetes_namespace!="",kubernetes_pod_name!=""}'
    assert {k: (v.group, v.resource) for k, v in rule.resources.overrides.items()} == {
        "kubernetes_namespace": ("", "namespace"), "kubernetes_pod_name": ("", "pod")}
    assert (rule.name.matches, rule.name.as_) == ("^(.*)_total", "${1}_per_second")
    assert rule.metrics_query == "sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)"


def test_deploy_manifest_resource_rules_load():
    cfg = load(str(FIXTURES / "deploy-config-map-config.yaml"))
    rr = cfg.resource_rules
    assert rr is not None and rr.window == 300.0
    assert rr.cpu.container_label == "container" and "irate" in rr.cpu.container_query
    assert set(rr.memory.resources.overrides) == {"node", "namespace", "pod"}
    assert cfg.rules == [] and cfg.external_rules == []


def test_external_metrics_doc_and_chart_defaults_load():
    ext = load(str(FIXTURES / "externalmetrics-config.yaml"))
    assert ext.external_rules[0].resources.overrides["namespace"].resource == "namespace"
    chart = load(str(FIXTURES / "chart-default-rules.yaml"))
    assert len(chart.rules) == 6
    assert chart.rules[1].series_filters[0].is_not == "^container_.*_seconds_total$"
    assert chart.rules[3].resources.template == "<<.Resource>>"
    assert chart.rules[0].metrics_query == (  # a folded plain scalar, as YAML reads it
        'sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[5m])) by (<<.GroupBy>>)')


def test_sample_config_is_refused_as_upstream_refuses_it():
    # docs/sample-config.yaml puts unescaped double quotes in a double-quoted scalar
    with pytest.raises(ConfigError) as e:
        load(str(FIXTURES / "sample-config.yaml"))
    assert str(e.value).startswith("line 32: ")
    assert "\n" not in str(e.value)


# --- strictness ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, want", [
    ("rule: []\n", 'rule: unknown field "rule" (known: rules, resourceRules, externalRules)'),
    ("rules:\n- seriesQuery: up\n  metricQuery: x\n", 'rules[0] (seriesQuery "up"): metricQuery: unknown field'),
    ("rules:\n- seriesQuery: up\n  name: {matches: x, alias: y}\n", 'rules[0] (seriesQuery "up"): name.alias: unknown'),
    ("rules:\n- seriesQuery: up\n  resources: {overrides: {pod: {resource: pod, kind: Pod}}}\n",
     "resources.overrides.pod.kind: unknown field"),
    ("externalRules:\n- seriesQuery: up\n  resources: {namespaced: maybe}\n",
     'externalRules[0] (seriesQuery "up"): resources.namespaced: cannot unmarshal "maybe" into a bool'),
    ("rules:\n- seriesQuery: up\n- seriesQuery: up\n  seriesQuery: down\n", 'line 4: key "seriesQuery" already set in map'),
    ("rules:\n- seriesQuery: [a]\n", "rules[0]: seriesQuery: cannot unmarshal a list into a string"),
    ("rules:\n- just a string\n", "rules[0]: expected a map"),
    ("resourceRules:\n  cpu: {containerQuery: '<<.Series'}\n",
     "resourceRules.cpu: containerQuery: template: metrics-query:1: unclosed action"),
    ("resourceRules:\n  memory: {nodeQuery: '<<.GroupBy>>', containerLabels: c}\n",
     "resourceRules.memory: containerLabels: unknown field"),
    ("rules:\n- seriesQuery: up\n  name: {matches: '(a)(b)'}\n",
     'name.as: must specify an \'as\' value for name matcher "(a)(b)"'),
    ("rules:\n- seriesQuery: up\n  seriesFilters: [{}]\n", "seriesFilters[0]: must have either an `is` or `isNot`"),
    ("rules:\n- seriesQuery: up\n  seriesFilters: [{is: '(unclosed'}]\n", "unable to compile series filter"),
    ("rules:\n- seriesQuery: up\n  resources: {template: '<<.Resource'}\n",
     "resources.template: template: resource-label:1: unclosed action"),
])
def test_refused_with_one_line_naming_rule_and_field(text, want):
    with pytest.raises(ConfigError) as e:
        loads(text)
    assert want in str(e.value)
    assert "\n" not in str(e.value)


def test_scalars_are_their_yaml_text_and_bools_yaml_1_1():
    cfg = loads("externalRules:\n- seriesQuery: up\n  name: {as: 123}\n  resources: {namespaced: off}\n")
    assert cfg.external_rules[0].name.as_ == "123"
    assert cfg.external_rules[0].resources.namespaced is False
    assert loads("rules:\nexternalRules: ~\n").rules == []


def test_durations():
    assert parse_prometheus_duration("5m") == 300 and parse_prometheus_duration("1h30m") == 5400
    assert parse_prometheus_duration("2d") == 172800 and parse_prometheus_duration("500ms") == 0.5
    assert parse_prometheus_duration("0") == 0
    for bad in ("5 m", "1.5m", "m", ""):
        with pytest.raises(ValueError):
            parse_prometheus_duration(bad)


# --- naming ----------------------------------------------------------------------------------------------
def namer(yaml_rule: str) -> MetricNamer:
    return MetricNamer(loads("rules:\n" + yaml_rule).rules[0], ResourceMapper())


def test_name_defaults_and_expansion():
    assert namer("- seriesQuery: x\n").metric_name_for_series("anything") == "anything"  # $0
    assert namer("- seriesQuery: x\n  name: {matches: '^container_(.*)_seconds_total$'}\n") \
        .metric_name_for_series("container_cpu_usage_seconds_total") == "cpu_usage"  # $1
    n = namer("- seriesQuery: x\n  name: {matches: '^(.*)_total', as: '${1}_per_second'}\n")
    assert n.metric_name_for_series("http_requests_total") == "http_requests_per_second"
    # Go's Expand: "$1_x" names the group "1_x" (none): empty; "$$" is a dollar
    n = namer("- seriesQuery: x\n  name: {matches: '^(?P<base>.*)_total$', as: '$1_x|$base|$$|${base}s|${bad'}\n")
    assert n.metric_name_for_series("jobs_total") == "|jobs|$|jobss|${bad"
    assert n.metric_name_for_series("no_match") is None


def test_filters_and_the_implicit_name_filter():
    n = namer("- seriesQuery: x\n  seriesFilters: [{isNot: '^container_.*_seconds_total$'}]\n"
              "  name: {matches: '^container_(.*)_total$'}\n")
    series = [{"__name__": s} for s in ("container_cpu_usage_seconds_total", "container_fs_reads_total",
                                        "container_memory_usage_bytes")]
    assert [s["__name__"] for s in n.filter_series(series)] == ["container_fs_reads_total"]


def test_resources_for_series_overrides_and_templates():
    n = namer("- seriesQuery: x\n  resources:\n    template: 'kube_<<.Group>>_<<.Resource>>'\n"
              "    overrides: {namespace: {resource: namespace}, brand: {group: cheese.io, resource: brand}}\n")
    res, namespaced = n.converter.resources_for_series(
        {"namespace": "a", "kube_apps_deployment": "b", "kube_batch_job": "c", "kube_x_notaresource": "d",
         "brand": "e", "instance": "f"})
    assert set(res) == {GroupResource("", "namespaces"), GroupResource("apps", "deployments"),
                        GroupResource("batch", "jobs"), GroupResource("cheese.io", "brands")}
    assert namespaced
    assert n.converter.label_for_resource(GroupResource("apps", "statefulsets")) == "kube_apps_statefulset"
    assert n.converter.label_for_resource(GroupResource("networking.k8s.io", "ingresses")) == \
        "kube_networking_k8s_io_ingress"


# --- queries ------------------------------------------------------------------------------------------------
WALK = ("- seriesQuery: 'http_requests_total{kubernetes_namespace!=\"\",kubernetes_pod_name!=\"\"}'\n"
        "  resources: {overrides: {kubernetes_namespace: {resource: namespace}, kubernetes_pod_name: {resource: pod}}}\n"
        "  name: {matches: '^(.*)_total', as: '${1}_per_second'}\n"
        "  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'\n")
PODS = GroupResource("", "pods")


def test_build_for_names_namespace_and_metric_selector():
    q = namer(WALK).query
    assert q.build("http_requests_total", PODS, "production", [], None, ["a", "b"]) == (
        'sum(rate(http_requests_total{kubernetes_namespace="production",kubernetes_pod_name=~"a|b"}[2m])) '
        "by (kubernetes_pod_name)")
    assert q.build("http_requests_total", PODS, "", [], LabelSelector.parse("verb in (GET,PUT),code!=500,!x"),
                   ["a"]) == ('sum(rate(http_requests_total{code!="500",verb=~"GET|PUT",x="",'
                              'kubernetes_pod_name="a"}[2m])) by (kubernetes_pod_name)')
    with pytest.raises(QueryBuildError, match="operator not supported by prometheus"):
        q.build("s", PODS, "", [], LabelSelector.parse("n>1"), ["a"])


def test_template_fields_and_extra_group_by():
    n = namer("- seriesQuery: x\n  resources: {template: '<<.Resource>>'}\n"
              "  metricsQuery: '<<.Series>>|<<index .LabelValuesByName \"pod\">>|<<.GroupBy>>|<<.GroupBySlice>>'\n")
    assert n.query.build("s", PODS, "ns", ["container"], None, ["a", "b"]) == "s|a|b|pod,container|[pod container]"


def test_build_external_namespaced_and_not():
    ext = loads("externalRules:\n- seriesQuery: q\n  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (name)'\n"
                "  resources: {overrides: {namespace: {resource: namespace}}}\n"
                "- seriesQuery: q2\n  metricsQuery: '<<.LabelMatchers>>|<<.LabelValuesByName>>'\n"
                "  resources: {namespaced: false}\n").external_rules
    m = ResourceMapper()
    a, b = MetricNamer(ext[0], m), MetricNamer(ext[1], m)
    assert a.query.build_external("queue", "default", LabelSelector.parse("topic=orders")) == (
        'sum(queue{topic="orders",namespace="default"}) by (name)')
    assert b.query.build_external("q2", "default", LabelSelector.parse("topic in (a,b)")) == \
        'topic=~"a|b"|map[topic:a|b]'


def test_registries_from_series():
    m = ResourceMapper()
    n = MetricNamer(loads("rules:\n" + WALK).rules[0], m)
    reg = CustomSeriesRegistry(m)
    reg.set_series([(n, [{"__name__": "http_requests_total", "kubernetes_namespace": "p",
                          "kubernetes_pod_name": "x", "method": "GET"}])])
    assert {(str(i.group_resource), i.namespaced, i.metric) for i in reg.metrics} == {
        ("pods", True, "http_requests_per_second"), ("namespaces", False, "http_requests_per_second")}
    ext = ExternalSeriesRegistry()
    ext.set_series([(n, [{"__name__": "http_requests_total"}])])
    assert [i.metric for i in ext.metrics] == ["http_requests_per_second"]
