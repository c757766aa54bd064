#!/usr/bin/env python3
"""PodMetrics benchmark (``kubectl top pod -A``-style list over N pods) against the running
server over HTTPS: p50/p99 latency at a fixed request rate, and the closed-loop maximum req/s.

Starts ``extserver serve --api-module examples.metrics_example`` (local mode, 127.0.0.1, a temp
data dir) with ``EXAMPLE_METRICS_FILE`` holding ``--pods`` pods of two containers, then sends
``GET /apis/metrics.k8s.io/v1beta1/pods`` with the admin client certificate: ``--rate``
requests/s for ``--duration`` seconds (open loop, bounded), then as fast as ``--concurrency``
connections allow for ``--duration`` seconds. Prints the numbers.

    python bench/bench_pod_metrics.py [--pods 1000] [--rate 100] [--duration 10] [--concurrency 4]
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

from tests.e2e.harness import ServerProcess  # noqa: E402

PATH = "/apis/metrics.k8s.io/v1beta1/pods"


def source(n: int) -> dict:
    pods = [{"namespace": f"ns-{i % 20}", "name": f"pod-{i:04d}", "labels": {"app": f"app-{i % 10}"},
             "containers": {"main": {"cpu": f"{i % 900 + 10}m", "memory": f"{i % 500 + 16}Mi"},
                            "sidecar": {"cpu": "5m", "memory": "12Mi"}}} for i in range(n)]
    return {"pods": pods, "nodes": [{"name": "node-a", "usage": {"cpu": "2", "memory": "8Gi"}}]}


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000


async def drive(srv: ServerProcess, rate: float, duration: float, concurrency: int) -> None:
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    ctx.load_cert_chain(*srv.client_cert)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=64)) as s:
        async def one() -> float:
            t = time.perf_counter()
            async with s.get(srv.url + PATH, headers={"Accept": "application/json"}) as r:
                body = await r.read()
                assert r.status == 200, (r.status, body[:200])
            return time.perf_counter() - t

        items = len(json.loads(await (await s.get(srv.url + PATH)).read())["items"])
        for _ in range(20):  # warm-up
            await one()
        # open loop at a fixed rate, bounded by count
        n = int(rate * duration)
        start = time.perf_counter()
        tasks = []
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one()))
        lat = await asyncio.gather(*tasks)
        took = time.perf_counter() - start
        print(f"PodMetrics list of {items} pods at {rate:g} req/s for {duration:g}s: "
              f"{n} requests, achieved {n / took:.1f} req/s, p50 {pct(lat, 0.5):.1f} ms, "
              f"p99 {pct(lat, 0.99):.1f} ms, max {max(lat) * 1000:.1f} ms")
        # closed loop: the maximum
        done: list[float] = []
        end = time.perf_counter() + duration

        async def worker() -> None:
            while time.perf_counter() < end and len(done) < 1_000_000:
                done.append(await one())

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        el = time.perf_counter() - t0
        print(f"closed loop, {concurrency} connections: {len(done) / el:.1f} req/s, "
              f"p50 {pct(done, 0.5):.1f} ms, p99 {pct(done, 0.99):.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=4)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-pod-metrics-"))
    (tmp / "metrics.json").write_text(json.dumps(source(a.pods)))
    os.environ["EXAMPLE_METRICS_FILE"] = str(tmp / "metrics.json")
    srv = ServerProcess(tmp / "data", extra_args=["--api-module", "examples.metrics_example", "--no-bundled-groups"])
    srv.start()
    try:
        asyncio.run(drive(srv, a.rate, min(a.duration, 120.0), a.concurrency))
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
