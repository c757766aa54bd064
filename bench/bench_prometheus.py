#!/usr/bin/env python3
"""Prometheus adapter benchmark with a REAL Prometheus holding ``--pods`` x 10 series
(``http_requests_total{namespace,pod,method,code}``; 10,000 series over 1,000 pods by default):

(1) one series relist (``/api/v1/series`` for the rules + filtering + naming), in-process with
    the adapter's own relister against that Prometheus, ``--relists`` times;
(2) the HPA's Pods metric end to end over HTTPS through the real server process
    (``pods/*/http_requests_per_second?labelSelector=...``: the pods listed from the
    kube-apiserver TEST stand-in, the PromQL query, the answer), at ``--rate`` requests/s for
    ``--duration`` s (open loop, bounded count), for a selector matching 100 pods and one
    matching all of them, with the controller's protobuf-first ``Accept`` (each also one
    request at a time, to show the latency without queueing).

Prometheus scrapes the exporter (prometheus_client, in a child process) every ``--scrape-interval``; the series
must be in Prometheus before the numbers are taken. Prints the numbers.

    python bench/bench_prometheus.py [--pods 1000] [--rate 50] [--duration 10] [--relists 5]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_metrics import HPA_ACCEPT  # noqa: E402
from bench.loadgen import open_loop, pct  # noqa: E402
from extserver.providers.prometheus.adapter import PrometheusAdapter  # noqa: E402
from extserver.providers.prometheus.client import PrometheusClient  # noqa: E402
from extserver.providers.prometheus.config import loads  # noqa: E402
from tests.e2e.harness import ServerProcess  # noqa: E402
from tests.prometheus_env import Family, PromStack  # noqa: E402
from tests.standin.kube_apiserver_standin import KubeAPIServerStandin  # noqa: E402

CONFIG = """
rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  name:
    matches: "^(.*)_total"
    as: "${1}_per_second"
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
"""
CODES = ("200", "201", "404", "429", "500")


def pod(i: int) -> str:
    return f"web-{i:04d}"


def family(n: int) -> Family:
    return Family("http_requests_total", "counter", ("namespace", "pod", "method", "code"), {
        ("bench", pod(i), m, c): 0.1 + (i % 50) / 10 for i in range(n) for m in ("GET", "POST") for c in CODES})


async def relist_times(url: str, n: int) -> tuple[list[float], int]:
    client = PrometheusClient(url, timeout=30.0)
    adapter = PrometheusAdapter.build(loads(CONFIG), client, relist_interval=60, max_age=600, kubeconfig=None,
                                      cluster_available=False)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await adapter.relister.relist()
        times.append(time.perf_counter() - t)
    metrics = len(adapter.relister.custom_registry.metrics)
    await client.close()
    return times, metrics


async def hpa_requests(srv: ServerProcess, path: str, rate: float, duration: float):
    """(items per answer, latencies, seconds taken, answers by status) at ``rate`` req/s."""
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    ctx.load_cert_chain(*srv.client_cert)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=64)) as s:
        codes: dict[int, int] = {}
        errors: dict[int, str] = {}  # one message per failing status, printed once

        async def one() -> float:
            t = time.perf_counter()
            async with s.get(srv.url + path, headers={"Accept": HPA_ACCEPT}) as r:
                body = await r.read()
                codes[r.status] = codes.get(r.status, 0) + 1
                if r.status != 200 and r.status not in errors:
                    errors[r.status] = json.loads(body).get("message", "")[:200]
            return time.perf_counter() - t

        async with s.get(srv.url + path, headers={"Accept": HPA_ACCEPT}) as r:
            items = len(json.loads(await r.read())["items"])
        for _ in range(10):  # warm-up
            await one()
        codes.clear()
        if rate <= 0:  # one at a time: the latency without queueing
            t0 = time.perf_counter()
            lat = [await one() for _ in range(20)]
            took = time.perf_counter() - t0
        else:
            lat, took = await open_loop(one, rate, duration)
        for code, msg in sorted(errors.items()):
            print(f"    {code}: {msg}")
        return items, lat, took, codes


def direct_query_ms(prom, n_pods: int, times: int = 20) -> float:
    """The median time of the same query sent straight to Prometheus (what the adapter adds
    on top is the rest)."""
    names = "|".join(pod(i) for i in range(n_pods))
    q = f'sum(rate(http_requests_total{{namespace="bench",pod=~"{names}"}}[2m])) by (pod)'
    import requests
    out = []
    for _ in range(times):
        t = time.perf_counter()
        requests.post(prom.url + "/api/v1/query", data={"query": q}, timeout=60).raise_for_status()
        out.append(time.perf_counter() - t)
    return statistics.median(out) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--relists", type=int, default=5)
    ap.add_argument("--scrape-interval", default="10s", help="Prometheus's (rate over [2m] reads 2m/interval samples)")
    a = ap.parse_args()
    duration = min(a.duration, 60.0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-prometheus-"))
    stack = PromStack(tmp / "prometheus", [family(a.pods)], scrape_interval=a.scrape_interval, exporter_process=True).start()
    standin = KubeAPIServerStandin(tmp / "standin").start()
    srv = None
    try:
        want = a.pods * 2 * len(CODES)
        stack.prometheus.wait_for("count(rate(http_requests_total[2m]) > 0) > 0", 1, timeout=120)
        got = int(float(stack.prometheus.query("count(http_requests_total)")[0]["value"][1]))
        print(f"Prometheus {stack.prometheus.url}: {got} series over {a.pods} pods (want {want})")
        times, metrics = asyncio.run(relist_times(stack.prometheus.url, max(1, min(a.relists, 50))))
        print(f"(1) series relist ({got} series -> {metrics} metrics): median {statistics.median(times) * 1000:.1f} ms, "
              f"min {min(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms over {len(times)} relists")
        standin.set_namespace("bench")
        for i in range(a.pods):
            standin.set_pod("bench", pod(i), {"app": "web", "shard": str(i // 100)})
        kubeconfig = standin.write_kubeconfig(tmp / "kubeconfig")
        cfg = tmp / "adapter.yaml"
        cfg.write_text(CONFIG)
        srv = ServerProcess(tmp / "data", extra_args=[
            "--no-bundled-groups", "--adapter-config", str(cfg), "--prometheus-url", stack.prometheus.url,
            "--metrics-relist-interval", "60s", "--kubeconfig", str(kubeconfig)]).start()
        base = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/bench/pods/%2A/http_requests_per_second"
        for n, sel, rate in ((min(100, a.pods), "shard%3D0", a.rate), (min(100, a.pods), "shard%3D0", 0),
                             (a.pods, "app%3Dweb", a.rate), (a.pods, "app%3Dweb", 0)):
            items, lat, took, codes = asyncio.run(hpa_requests(srv, f"{base}?labelSelector={sel}", rate, duration))
            load = f"{rate:g} req/s offered for {duration:g}s" if rate > 0 else "one at a time"
            print(f"(2) HPA Pods metric, selector matching {n} pods ({items} items): {load}, {len(lat)} requests "
                  f"{dict(sorted(codes.items()))}, {len(lat) / took:.1f} req/s achieved, p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms, max {max(lat) * 1000:.1f} ms; "
                  f"the same query straight to Prometheus: median {direct_query_ms(stack.prometheus, n):.1f} ms")
    finally:
        if srv is not None:
            srv.stop()
        standin.stop()
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
