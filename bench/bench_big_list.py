#!/usr/bin/env python3
"""Big-list benchmark: does one huge list block everyone else?

Starts ``extserver serve`` (local mode, embedded store, 127.0.0.1, a temp data dir), seeds
``--objects`` flunders (32 concurrent creates), then for each of a Table list (what
``kubectl get`` asks for), a YAML list and a JSON list of all of them, probes ``/healthz``
every 10 ms on another connection while the list is read, and prints the list's duration
and size and the probes' p50/p99/max latency, after a baseline of probes alone. Every loop is bounded in count and time.

    python bench/bench_big_list.py [--objects 100000] [--probe-interval 0.01] [--data-dir DIR]

With ``--data-dir`` the store is kept there and reused by the next run (seeded only when
empty): a server restarted on a big store is the common case, and seeding takes minutes.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_api import stop  # noqa: E402
BASE = "/apis/wardle.example.com/v1beta1"
NS = "bench"
#: "none": no list, the probes' baseline on this machine
ACCEPTS = {"table": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
           "yaml": "application/yaml", "json": "application/json"}


def start_server(data: Path) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "extserver.cli", "serve", "--bind-address", "127.0.0.1",
                             "--secure-port", "0", "--data-dir", str(data), "--embedded-sync", "normal"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=str(REPO))
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(r" on (https://[\d.]+:\d+)", line)
        if m:
            return proc, m.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise SystemExit("extserver did not start")


def client_ssl(data: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(data / "certs" / "apiserver-ca.crt"))
    ctx.load_cert_chain(str(data / "admin.crt"), str(data / "admin.key"))
    return ctx


async def seed(url: str, ctx: ssl.SSLContext, n: int) -> float:
    started = time.monotonic()
    conn = aiohttp.TCPConnector(ssl=ctx, limit=32)
    async with aiohttp.ClientSession(connector=conn) as s:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                body = {"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder",
                        "metadata": {"name": f"f-{i:06d}", "labels": {"bench": "big"}},
                        "spec": {"referenceType": "Flunder", "flunderReference": f"ref-{i}"}}
                async with s.post(f"{url}{BASE}/namespaces/{NS}/flunders", json=body) as r:
                    if r.status != 201:
                        raise RuntimeError(f"create failed: {r.status} {await r.text()}")

        await asyncio.gather(*(worker() for _ in range(32)))
    return time.monotonic() - started


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def measure(url: str, ctx: ssl.SSLContext, accept: str | None, interval: float, limit_s: float) -> dict:
    probes: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        conn = aiohttp.TCPConnector(ssl=ctx, limit=1)
        async with aiohttp.ClientSession(connector=conn) as s:
            while not done.is_set():
                t = time.perf_counter()
                async with s.get(url + "/healthz") as r:
                    await r.read()
                probes.append(time.perf_counter() - t)
                await asyncio.sleep(interval)

    prober = asyncio.create_task(probe())
    await asyncio.sleep(0.2)  # probes running before the list starts
    if accept is None:  # the baseline: probes alone for 2 s
        await asyncio.sleep(2.0)
        done.set()
        await prober
        return {"status": 0, "bytes": 0, "seconds": 2.0, "probes": probes}
    conn = aiohttp.TCPConnector(ssl=ctx, limit=1)
    t = time.perf_counter()
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=limit_s)) as s:
        async with s.get(f"{url}{BASE}/namespaces/{NS}/flunders", headers={"Accept": accept}) as r:
            status = r.status
            size = 0
            async for chunk in r.content.iter_chunked(1 << 16):
                size += len(chunk)
    took = time.perf_counter() - t
    done.set()
    await prober
    return {"status": status, "bytes": size, "seconds": took, "probes": probes}


async def main_async(args) -> None:
    keep = args.data_dir is not None
    data = Path(args.data_dir) if keep else Path(tempfile.mkdtemp(prefix="extserver-bench-big-"))
    seeded = (data / "store" / "store.db").exists()
    proc, url = start_server(data)
    try:
        ctx = client_ssl(data)
        if not seeded:
            took = await seed(url, ctx, args.objects)
            print(f"seeded {args.objects} objects in {took:.1f}s ({args.objects / took:.0f}/s)")
        for name, accept in [("none", None)] + list(ACCEPTS.items()):
            r = await measure(url, ctx, accept, args.probe_interval, args.list_timeout)
            p = [x * 1000 for x in r["probes"]]
            print(f"{name:5s} list: HTTP {r['status']}, {r['bytes'] / 1e6:.1f} MB in {r['seconds']:.2f}s | "
                  f"/healthz during it: n={len(p)} p50={pct(p, 50):.1f}ms p99={pct(p, 99):.1f}ms "
                  f"max={max(p) if p else float('nan'):.1f}ms")
    finally:
        stop(proc)
        if not keep:
            shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--probe-interval", type=float, default=0.01, help="seconds between /healthz probes")
    ap.add_argument("--data-dir", default=None, help="keep the store here and reuse it (seeded when empty)")
    ap.add_argument("--list-timeout", type=float, default=600.0, help="give up on one list after this")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
