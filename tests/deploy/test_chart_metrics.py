"""The chart as a metrics server (values ``metrics``), rendered by the real helm binary and
checked with kubernetes-validate --strict: one APIService per metrics group-version, each
switchable; the HPA controller's access to custom and external metrics; metrics-server's
``system:aggregated-metrics-reader``; the server's read access to pods and nodes."""
from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import CHART_DIR, NAMESPACE, find, one, run_helm_template

#: the documented metrics-server values (docs/metrics.md)
METRICS = str(CHART_DIR / "examples" / "metrics-server-values.yaml")
ALL = {"v1beta1.metrics.k8s.io": ("metrics.k8s.io", "v1beta1", 100, 100),
       "v1beta1.custom.metrics.k8s.io": ("custom.metrics.k8s.io", "v1beta1", 100, 100),
       "v1beta2.custom.metrics.k8s.io": ("custom.metrics.k8s.io", "v1beta2", 100, 200),
       "v1beta1.external.metrics.k8s.io": ("external.metrics.k8s.io", "v1beta1", 100, 100)}
SWITCH = {"v1beta1.metrics.k8s.io": "resourceMetrics", "v1beta1.custom.metrics.k8s.io": "customMetricsV1beta1",
          "v1beta2.custom.metrics.k8s.io": "customMetricsV1beta2",
          "v1beta1.external.metrics.k8s.io": "externalMetrics"}
HPA_ROLE = "t-extserver-metrics-hpa"


def values_args(value_set: str | None) -> list[str]:
    return [] if value_set is None else ["--values", value_set]


def off(*names: str) -> list[str]:
    return [a for n in names for a in ("--set", f"metrics.apiServices.{SWITCH[n]}.enabled=false")]


def apiservices(objects) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in find(objects, "APIService")}


def test_nothing_metrics_by_default(render):
    objects = render(None)
    assert not set(apiservices(objects)) & set(ALL)
    assert not find(objects, "ClusterRole", HPA_ROLE)
    assert not find(objects, "ClusterRole", "system:aggregated-metrics-reader")


def test_one_apiservice_per_metrics_group_version(render):
    objects = render(METRICS)
    services = apiservices(objects)
    assert set(services) == set(ALL)  # apiService.groups is empty in this value set
    for name, (group, version, gpm, vp) in ALL.items():
        spec = services[name]["spec"]
        assert (spec["group"], spec["version"], spec["groupPriorityMinimum"], spec["versionPriority"]) == \
            (group, version, gpm, vp)
        assert spec["service"] == {"name": "t-extserver", "namespace": NAMESPACE, "port": 443}
        assert spec["caBundle"]  # the chart's serving CA, as for the other APIServices
    assert len({s["spec"]["caBundle"] for s in services.values()}) == 1
    # beside the served groups' own APIServices, with the same CA
    both = apiservices(render(None, "--set", "metrics.enabled=true"))
    assert {"v1beta1.wardle.example.com", *ALL} <= set(both)
    assert both["v1beta1.custom.metrics.k8s.io"]["spec"]["caBundle"] == \
        both["v1beta1.wardle.example.com"]["spec"]["caBundle"]


@pytest.mark.parametrize("name", list(ALL))
def test_each_apiservice_is_switchable(render, name):
    assert set(apiservices(render(METRICS, *off(name)))) == set(ALL) - {name}


def test_hpa_controller_may_read_custom_and_external_metrics(render):
    objects = render(METRICS)
    role = one(objects, "ClusterRole", HPA_ROLE)
    assert role["rules"] == [
        {"apiGroups": ["custom.metrics.k8s.io"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["external.metrics.k8s.io"], "resources": ["*"], "verbs": ["get", "list", "watch"]}]
    binding = one(objects, "ClusterRoleBinding", HPA_ROLE)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": HPA_ROLE}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "horizontal-pod-autoscaler",
                                    "namespace": "kube-system"}]
    # the rules follow the APIServices served
    role = one(render(METRICS, *off("v1beta1.external.metrics.k8s.io")), "ClusterRole", HPA_ROLE)
    assert [r["apiGroups"] for r in role["rules"]] == [["custom.metrics.k8s.io"]]
    role = one(render(METRICS, *off("v1beta1.custom.metrics.k8s.io", "v1beta2.custom.metrics.k8s.io")),
               "ClusterRole", HPA_ROLE)
    assert [r["apiGroups"] for r in role["rules"]] == [["external.metrics.k8s.io"]]
    none = render(METRICS, *off("v1beta1.custom.metrics.k8s.io", "v1beta2.custom.metrics.k8s.io",
                                "v1beta1.external.metrics.k8s.io"))
    assert not find(none, "ClusterRole", HPA_ROLE) and not find(none, "ClusterRoleBinding", HPA_ROLE)
    assert not find(render(METRICS, "--set", "metrics.hpaAccess=false"), "ClusterRole", HPA_ROLE)


def test_aggregated_metrics_reader_like_metrics_servers(render):
    role = one(render(METRICS), "ClusterRole", "system:aggregated-metrics-reader")
    labels = role["metadata"]["labels"]
    for verb in ("view", "edit", "admin"):
        assert labels[f"rbac.authorization.k8s.io/aggregate-to-{verb}"] == "true"
    assert role["rules"] == [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"],
                              "verbs": ["get", "list", "watch"]}]
    assert not find(render(METRICS, *off("v1beta1.metrics.k8s.io")), "ClusterRole",
                    "system:aggregated-metrics-reader")
    assert not find(render(METRICS, "--set", "metrics.aggregatedMetricsReader=false"), "ClusterRole",
                    "system:aggregated-metrics-reader")


def test_server_reads_the_described_objects(render):
    objects = render(METRICS)
    role = one(objects, "ClusterRole", "t-extserver-metrics-objects")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods", "nodes", "namespaces"],
                              "verbs": ["get", "list", "watch"]}]
    binding = one(objects, "ClusterRoleBinding", "t-extserver-metrics-objects")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "t-extserver", "namespace": NAMESPACE}]


def test_schema_refuses_unknown_metrics_values(helm):
    for bad in ("metrics.bogus=1", "metrics.apiServices.customMetricsV1beta3.enabled=true",
                "metrics.apiServices.externalMetrics.versionPriority=0"):
        proc = run_helm_template(helm, "--set", bad)
        assert proc.returncode != 0 and "values don't meet the specifications of the schema" in proc.stderr, bad


@pytest.mark.parametrize("extra", [[], off("v1beta1.metrics.k8s.io", "v1beta1.external.metrics.k8s.io"),
                                   ["--set", "tls.type=cert-manager"]], ids=["all", "custom-only", "cert-manager"])
def test_lint_and_kubernetes_validate_strict(helm, tmp_path, extra):
    lint = subprocess.run([helm, "lint", "--strict", str(CHART_DIR), "--namespace", NAMESPACE,
                           *values_args(METRICS), *extra], capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    proc = run_helm_template(helm, *values_args(METRICS), *extra)
    assert proc.returncode == 0, proc.stderr
    # cert-manager's own kinds have no schema in the validator: keep the built-in ones
    docs = [d for d in proc.stdout.split("\n---\n") if "cert-manager.io/v1" not in d.split("kind:")[0]]
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text("\n---\n".join(docs))
    result = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", str(rendered)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed ") >= 4 + len(ALL)
