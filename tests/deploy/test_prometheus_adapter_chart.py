"""The chart's Prometheus adapter values (``prometheusAdapter:``, shaped as prometheus-adapter's
chart's ``rules.*``), rendered by the real helm: the ConfigMap holds a configuration the
server's own loader accepts, the server gets the flags and the mount, only APIServices the
rules serve may be registered, and the manifests validate."""
from __future__ import annotations

import subprocess
import sys

import yaml

from extserver.options import build_parser
from extserver.providers.prometheus.config import loads
from tests.deploy.conftest import CHART_DIR, FULLNAME, find, one, run_helm_template

EXAMPLE = str(CHART_DIR / "examples" / "prometheus-adapter-values.yaml")
FIXTURE = CHART_DIR.parents[1] / "tests" / "fixtures" / "prometheus_adapter" / "chart-default-rules.yaml"


def _container(objects):
    dep = one(objects, "Deployment", FULLNAME)
    return dep["spec"]["template"]["spec"], dep["spec"]["template"]["spec"]["containers"][0]


def test_example_renders_a_config_the_server_loads_and_the_flags_to_use_it(render):
    objects = render(None, "--values", EXAMPLE)
    cm = one(objects, "ConfigMap", f"{FULLNAME}-prometheus-adapter")
    cfg = loads(cm["data"]["config.yaml"])
    assert [r.name.as_ for r in cfg.rules] == ["${1}_per_second"]
    assert cfg.external_rules[0].resources.namespaced is False
    assert cfg.resource_rules is not None and cfg.resource_rules.window == 180.0
    spec, c = _container(objects)
    args = build_parser().parse_args(["serve", *c["args"]])
    assert args.adapter_config == "/etc/extserver/adapter/config.yaml"
    assert args.prometheus_url == "http://prometheus-operated.monitoring.svc:9090"
    assert args.metrics_relist_interval == 60.0
    assert {"name": "prometheus-adapter-config", "mountPath": "/etc/extserver/adapter", "readOnly": True} \
        in c["volumeMounts"]
    assert {"name": "prometheus-adapter-config", "configMap": {"name": f"{FULLNAME}-prometheus-adapter"}} \
        in spec["volumes"]
    names = {o["metadata"]["name"] for o in find(objects, "APIService")}
    assert names == {"v1beta1.metrics.k8s.io", "v1beta1.custom.metrics.k8s.io", "v1beta2.custom.metrics.k8s.io",
                     "v1beta1.external.metrics.k8s.io"}
    role = one(objects, "ClusterRole", f"{FULLNAME}-prometheus-adapter-resource-reader")
    assert all(set(r["verbs"]) == {"get", "list", "watch"} for r in role["rules"])


def test_default_rules_are_prometheus_adapters_charts(render, tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text(yaml.safe_dump({
        "metrics": {"enabled": True, "apiServices": {"externalMetrics": {"enabled": False},
                                                     "resourceMetrics": {"enabled": False}}},
        "prometheusAdapter": {
            "enabled": True, "prometheus": {"url": "https://prom.{{ .Release.Namespace }}.svc", "port": "",
                                            "headers": ["X-Scope-OrgID=tenant-1"], "tokenFile": "/var/run/t"},
            "metricsMaxAge": "5m"}}))
    objects = render(None, "--values", str(values))
    cfg = loads(one(objects, "ConfigMap", f"{FULLNAME}-prometheus-adapter")["data"]["config.yaml"])
    fixture = loads(FIXTURE.read_text())
    assert [(r.series_query, r.metrics_query, r.name.matches, [f.is_not for f in r.series_filters])
            for r in cfg.rules] == [(r.series_query, r.metrics_query, r.name.matches,
                                     [f.is_not for f in r.series_filters]) for r in fixture.rules]
    _, c = _container(objects)
    args = build_parser().parse_args(["serve", *c["args"]])
    assert args.prometheus_url == "https://prom.ns.svc"  # templated
    assert args.metrics_max_age == 300.0
    assert args.prometheus_header == ["X-Scope-OrgID=tenant-1"]
    assert args.prometheus_token_file == "/var/run/t"


def test_existing_configmap_is_mounted_instead(render, tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text(yaml.safe_dump({"metrics": {"enabled": True}, "prometheusAdapter": {
        "enabled": True, "rules": {"existing": "adapter-config"}}}))
    objects = render(None, "--values", str(values))
    assert not find(objects, "ConfigMap", f"{FULLNAME}-prometheus-adapter")
    spec, _ = _container(objects)
    assert {"name": "prometheus-adapter-config", "configMap": {"name": "adapter-config"}} in spec["volumes"]


def test_apiservices_without_rules_for_them_are_refused(helm, tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text(yaml.safe_dump({"metrics": {"enabled": True}, "prometheusAdapter": {"enabled": True}}))
    proc = run_helm_template(helm, "--values", str(values))
    assert proc.returncode != 0
    assert "is registered but prometheusAdapter.rules" in proc.stderr
    proc = run_helm_template(helm, "--set", "prometheusAdapter.enabled=true")
    assert proc.returncode != 0 and "prometheusAdapter.enabled needs metrics.enabled=true" in proc.stderr


def test_disabled_by_default(render):
    objects = render(None)
    assert not [o for o in objects if "prometheus-adapter" in o["metadata"]["name"]]
    _, c = _container(objects)
    assert not any(a.startswith("--adapter-config") for a in c["args"])


def test_example_manifests_lint_and_validate(helm, tmp_path):
    lint = subprocess.run([helm, "lint", "--strict", str(CHART_DIR), "--values", EXAMPLE], capture_output=True,
                          text=True, timeout=120)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    proc = run_helm_template(helm, "--values", EXAMPLE)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "rendered.yaml"
    out.write_text(proc.stdout)
    v = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--kubernetes-version", "1.30.0", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert v.returncode == 0, v.stdout + v.stderr
