#!/usr/bin/env python3
"""Metrics API benchmark against the running server over HTTPS: p50/p99 latency and req/s of

(a) the HPA's Pods metric: ``GET /apis/custom.metrics.k8s.io/v1beta2/namespaces/bench/pods/*/
    requests_per_second?labelSelector=app=web`` over ``--pods`` pods (all matching), with the
    controller's protobuf-first ``Accept``;
(b) ``kubectl top pod -A``: ``GET /apis/metrics.k8s.io/v1beta1/pods`` over the same pods.

Starts ``extserver serve --api-module examples.metrics_example`` (local mode, 127.0.0.1, a temp
data dir) with ``EXAMPLE_METRICS_FILE`` holding the pods and their values, then for each
scenario sends ``--rate`` requests/s for ``--duration`` seconds (open loop, bounded count and
time) with the admin client certificate, then as fast as ``--concurrency`` connections allow
for ``--duration`` seconds. Prints the numbers, and the server's CPU time per request (which
other load on the machine disturbs less than the latencies).

    python bench/bench_metrics.py [--pods 1000] [--rate 100] [--duration 10] [--concurrency 4]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import ssl
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.loadgen import closed_loop, open_loop, pct  # noqa: E402
from tests.e2e.harness import ServerProcess  # noqa: E402

HPA_ACCEPT = "application/vnd.kubernetes.protobuf, */*"
SCENARIOS = [
    ("(a) HPA Pods metric, label selector", "/apis/custom.metrics.k8s.io/v1beta2/namespaces/bench/pods/%2A/"
     "requests_per_second?labelSelector=app%3Dweb", HPA_ACCEPT),
    ("(b) kubectl top pod -A (PodMetrics)", "/apis/metrics.k8s.io/v1beta1/pods", "application/json"),
]


def source(n: int) -> dict:
    pods = [{"namespace": "bench", "name": f"web-{i:04d}", "labels": {"app": "web", "pod-template-hash": "5d8f"},
             "containers": {"main": {"cpu": f"{i % 900 + 10}m", "memory": f"{i % 500 + 16}Mi"},
                            "sidecar": {"cpu": "5m", "memory": "12Mi"}}} for i in range(n)]
    rps = {f"bench/web-{i:04d}": f"{1000 + i * 7}m" for i in range(n)}
    return {"pods": pods, "nodes": [{"name": "node-a", "usage": {"cpu": "2", "memory": "8Gi"}}],
            "custom": {"pods/requests_per_second": rps}}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def scenario(s: aiohttp.ClientSession, url: str, name: str, accept: str, rate: float, duration: float,
                   concurrency: int, pid: int) -> None:
    async def one() -> float:
        t = time.perf_counter()
        async with s.get(url, headers={"Accept": accept}) as r:
            body = await r.read()
            assert r.status == 200, (r.status, body[:200])
        return time.perf_counter() - t

    async with s.get(url, headers={"Accept": accept}) as r:
        items = len(json.loads(await r.read())["items"])
    for _ in range(20):  # warm-up
        await one()
    n = int(rate * duration)
    cpu = cpu_seconds(pid)
    lat, took = await open_loop(one, rate, duration)
    cpu = (cpu_seconds(pid) - cpu) / n * 1000
    print(f"{name}: {items} items, {rate:g} req/s offered for {duration:g}s: {n} requests, "
          f"{n / took:.1f} req/s achieved, p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms, "
          f"max {max(lat) * 1000:.1f} ms; server CPU {cpu:.1f} ms/request")
    done, el = await closed_loop(one, concurrency, duration)
    print(f"{name}: closed loop, {concurrency} connections: {len(done) / el:.1f} req/s, "
          f"p50 {pct(done, 0.5):.1f} ms, p99 {pct(done, 0.99):.1f} ms")


async def drive(srv: ServerProcess, a: argparse.Namespace) -> None:
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    ctx.load_cert_chain(*srv.client_cert)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=64)) as s:
        for name, path, accept in SCENARIOS:
            if a.only and not name.startswith(f"({a.only})"):
                continue
            await scenario(s, srv.url + path, name, accept, a.rate, min(a.duration, 120.0), a.concurrency,
                           srv.proc.pid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--only", choices=["a", "b"], help="run one scenario")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    (tmp / "metrics.json").write_text(json.dumps(source(a.pods)))
    os.environ["EXAMPLE_METRICS_FILE"] = str(tmp / "metrics.json")
    srv = ServerProcess(tmp / "data", extra_args=["--api-module", "examples.metrics_example", "--no-bundled-groups"])
    srv.start()
    try:
        asyncio.run(drive(srv, a))
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
