#!/usr/bin/env python3
"""API benchmark: requests/s and p50/p99 latency against the running server over HTTPS.

The LOWER BOUND of a request's cost: anonymous requests, no authorizer. Starts ``extserver
serve`` (127.0.0.1, a temp data dir; ``--backend etcd3`` starts a single etcd member on loopback
too) with ``--anonymous-auth --authorization-mode AlwaysAllow`` and a client CA it never sees
used (so it is not in local mode, which admits the admin certificate only), then drives it with
``wrk -t2 -c32`` (Debian package ``wrk``, which presents no client certificate) for: get one
object, list 100 objects (newest and
``resourceVersion=0``), create, merge-patch; and with a Python asyncio client for watch
event delivery latency with 100 and 1,000 watchers. Every loop is bounded in count and time.

    python bench/bench_api.py [--backend embedded|etcd3] [--duration 10] [--workers N]
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

import uvloop

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NS = "bench"
BASE = "/apis/wardle.example.com/v1beta1"

LUA_CREATE = """
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
counter = 0
request = function()
  counter = counter + 1
  local body = '{"apiVersion":"wardle.example.com/v1beta1","kind":"Flunder","metadata":{"name":"c-' ..
               tid .. '-' .. counter .. '"}}'
  return wrk.format("POST", nil, {["Content-Type"]="application/json"}, body)
end
"""

LUA_PATCH = """
counter = 0
request = function()
  counter = counter + 1
  local body = '{"metadata":{"labels":{"n":"' .. counter .. '"}}}'
  local path = string.format("%s/seed-%04d", wrk.path, math.random(0, 99))
  return wrk.format("PATCH", path, {["Content-Type"]="application/merge-patch+json"}, body)
end
"""

LUA_REPORT = """
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %.3f %.3f %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50)/1000, latency:percentile(99)/1000, latency.mean/1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def start_server(data: Path, backend: str, etcd_endpoints: list[str] | None, workers: int) -> tuple[subprocess.Popen, str]:
    from extserver.server import certs
    data.mkdir(parents=True, exist_ok=True)
    unused_ca = data.parent / "unused-client-ca.crt"
    unused_ca.write_bytes(certs.new_ca("bench-unused-client-ca").cert_pem)
    cmd = [sys.executable, "-m", "extserver.cli", "serve", "--bind-address", "127.0.0.1", "--secure-port", "0",
           "--data-dir", str(data), "--anonymous-auth", "--authorization-mode", "AlwaysAllow",
           "--client-ca-file", str(unused_ca), "--storage-backend", backend,
           "--max-requests-inflight", "0", "--max-mutating-requests-inflight", "0"]
    if etcd_endpoints:
        cmd += ["--etcd-servers", ",".join(etcd_endpoints), "--workers", str(workers)]
    log = open(data.parent / "server.log", "w")  # a pipe nobody reads would block the server
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=str(REPO))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(r" on (https://[\d.]+:\d+)", (data.parent / "server.log").read_text())
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start:\n" + (data.parent / "server.log").read_text()[-2000:])


def stop(proc: subprocess.Popen | None, timeout: float = 30) -> None:
    """SIGTERM a process this bench started (by its PID), SIGKILL if it does not end in time."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def client_ssl(data: Path) -> ssl.SSLContext:
    """Anonymous, as wrk is: the serving CA only."""
    return ssl.create_default_context(cafile=str(data / "certs" / "apiserver-ca.crt"))


async def seed(url: str, ctx: ssl.SSLContext | None, n: int) -> None:
    """``n`` Flunders (``ctx`` None: plain HTTP, through a proxy)."""
    import aiohttp
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx if ctx is not None else False,
                                                                    limit=16)) as s:
        async def one(i: int) -> None:
            body = {"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder",
                    "metadata": {"name": f"seed-{i:04d}", "labels": {"bench": "seed"}},
                    "spec": {"flunderReference": "x", "referenceType": "Flunder"}}
            async with s.post(f"{url}{BASE}/namespaces/{NS}/flunders", json=body) as r:
                assert r.status == 201, await r.text()
        await asyncio.gather(*(one(i) for i in range(n)))


def wrk(url: str, duration: int, script: str | None = None, threads: int = 2, conns: int = 32) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write((script or "") + LUA_REPORT)
        lua = f.name
    try:
        p = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency", "-s", lua, url],
                           capture_output=True, text=True, timeout=duration + 60)
    finally:
        os.unlink(lua)
    m = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) (\d+) (\d+)", p.stdout)
    if not m:
        raise SystemExit("wrk failed:\n" + p.stdout + p.stderr)
    n, dur_us, p50, p99, mean, bad_status, sock_err = m.groups()
    return {"rps": int(n) / (int(dur_us) / 1e6), "p50_ms": float(p50), "p99_ms": float(p99),
            "non2xx": int(bad_status), "socket_errors": int(sock_err)}


_RV_MARK = b'"resourceVersion":"'


class _WatchReader(asyncio.Protocol):
    """One watcher's connection, read as cheaply as Python can: the bench client shares the
    machine's two cores with the server and the proxy, so it must not be what is measured.
    It sends the watch request, skips the response head and then, without decoding the
    chunked framing or the JSON, stamps every ``"resourceVersion":"N"`` it sees (each event
    object has exactly one, in its metadata) with its arrival time."""

    def __init__(self, request: bytes, arrivals: list, want: int, done: asyncio.Future, opened: asyncio.Future):
        self.request, self.arrivals, self.want, self.done, self.opened = request, arrivals, want, done, opened
        self.buf = b""
        self.head = True
        self.count = 0
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buf = self.buf + data
        if self.head:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if b" 200 " not in buf[:buf.find(b"\r\n")]:
                self._finish(RuntimeError(f"watch failed: {buf[:200]!r}"))
                return
            self.head = False
            buf = buf[end + 4:]
            if not self.opened.done():
                self.opened.set_result(None)
        pos, keep = 0, 0
        while True:
            i = buf.find(_RV_MARK, pos)
            if i < 0:
                keep = max(pos, len(buf) - len(_RV_MARK))
                break
            j = buf.find(b'"', i + len(_RV_MARK))
            if j < 0:
                keep = i
                break
            self.arrivals.append((buf[i + len(_RV_MARK):j].decode(), now))
            self.count += 1
            pos = j + 1
        self.buf = buf[keep:]
        if self.count >= self.want:
            self._finish(None)

    def _finish(self, exc: BaseException | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc) if exc is not None else self.done.set_result(None)
        self.transport.close()

    def connection_lost(self, exc) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"watch connection lost before its response: {exc}"))
        if not self.done.done():
            self.done.set_result(None)


async def watch_latency(url: str, ctx: ssl.SSLContext | None, watchers: int, writes: int,
                        interval: float = 0.05, on_ready=None) -> dict:
    """Open ``watchers`` watches, make ``writes`` updates one at a time, one every ``interval``
    seconds (at most), and measure the time from sending each write to its event arriving at
    every watcher (the write itself, fsync or etcd round trip included). ``ctx`` None: plain
    HTTP (through a proxy); ``on_ready`` is called once every watch is open."""
    import aiohttp
    loop = asyncio.get_running_loop()
    conn = aiohttp.TCPConnector(ssl=ctx if ctx is not None else False, limit=0)
    arrivals: list[tuple[str, float]] = []
    sent_at: dict[str, float] = {}
    readers: list[_WatchReader] = []
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=None)) as s:
        name = f"watched-{watchers}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
        body = {"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder", "metadata": {"name": name}}
        async with s.post(f"{url}{BASE}/namespaces/{NS}-w/flunders", json=body) as r:
            start_rv = (await r.json())["metadata"]["resourceVersion"]
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        path = f"{BASE}/namespaces/{NS}-w/flunders?watch=1&resourceVersion={start_rv}&timeoutSeconds=300"
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n".encode()
        connecting = asyncio.Semaphore(32)  # TLS handshakes are CPU work for both sides: pace them

        async def open_one() -> asyncio.Future:
            async with connecting:
                done, opened = loop.create_future(), loop.create_future()
                reader = _WatchReader(request, arrivals, writes, done, opened)
                await loop.create_connection(lambda: reader, host, int(port), ssl=ctx)
                readers.append(reader)
                await asyncio.wait_for(opened, 60)
                return done

        dones = await asyncio.wait_for(asyncio.gather(*(open_one() for _ in range(watchers))), 180)
        await asyncio.sleep(0.5)
        if on_ready is not None:
            on_ready()
        began = time.perf_counter()
        for k in range(writes):
            patch = {"metadata": {"labels": {"k": str(k)}}}
            t = time.perf_counter()  # latency = from sending the write to the event's arrival
            async with s.patch(f"{url}{BASE}/namespaces/{NS}-w/flunders/{name}", json=patch,
                               headers={"Content-Type": "application/merge-patch+json"}) as r:
                rv = (await r.json())["metadata"]["resourceVersion"]
                sent_at[rv] = t
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - t)))
        write_rate = writes / (time.perf_counter() - began)
        finished, pending = await asyncio.wait(dones, timeout=120)
        for reader in readers:
            reader.transport.close()
    lat = sorted(t - sent_at[rv] for rv, t in arrivals if rv in sent_at)
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for rv, t in arrivals:
        if rv in sent_at:
            first[rv] = min(first.get(rv, t), t)
            last[rv] = max(last.get(rv, t), t)
    # per write: when its event reached the first watcher, and how long until the last one had it
    firsts = sorted(first[rv] - sent_at[rv] for rv in first)
    spreads = sorted(last[rv] - first[rv] for rv in first)
    expected = watchers * writes
    received = sum(min(r.count, writes) for r in readers)
    return {"watchers": watchers, "write_rate": write_rate, "events": len(lat), "expected": expected, "lost": expected - received,
            "p50_ms": 1000 * lat[len(lat) // 2] if lat else float("nan"),
            "p99_ms": 1000 * lat[int(len(lat) * 0.99)] if lat else float("nan"),
            "max_ms": 1000 * lat[-1] if lat else float("nan"),
            "first_p50_ms": 1000 * firsts[len(firsts) // 2] if firsts else float("nan"),
            "spread_p50_ms": 1000 * spreads[len(spreads) // 2] if spreads else float("nan")}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid``, its exited children and its live ones (the
    ``--workers`` processes) so far (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    ticks = sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK") + sum(cpu_seconds(int(c)) for c in children)


def watch_summary(w: dict) -> str:
    """One line of a :func:`watch_latency` result."""
    return (f"watch delivery, {w['watchers']:>5} watchers, {w['write_rate']:.0f} writes/s (50 asked): "
            f"p50 {w['p50_ms']:.2f} ms, p99 {w['p99_ms']:.2f} ms, max {w['max_ms']:.0f} ms (per write: first "
            f"watcher {w['first_p50_ms']:.1f} ms, first to last {w['spread_p50_ms']:.1f} ms, p50s), "
            f"events {w['events']}/{w['expected']}, lost {w['lost']}")


def main() -> None:
    from extserver.cli import raise_open_files_limit
    raise_open_files_limit()  # 1,000 watch connections on the client side too
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="embedded", choices=["embedded", "etcd3"])
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk scenario (max 60)")
    ap.add_argument("--workers", type=int, default=1, help="--workers of the server (etcd3 only)")
    ap.add_argument("--watch-writes", type=int, default=200, help="writes per watch scenario, 50 a second (max 1000)")
    ap.add_argument("--watchers", default="100,1000", help="comma-separated watcher counts ('' for none)")
    args = ap.parse_args()
    args.duration = max(1, min(args.duration, 60))
    args.watch_writes = max(1, min(args.watch_writes, 1000))
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    data = Path(tempfile.mkdtemp(prefix="extserver-bench-"))
    cluster = None
    endpoints = None
    if args.backend == "etcd3":
        from tests.etcd_cluster import EtcdCluster
        cluster = EtcdCluster(data / "etcd", size=1).start()
        endpoints = cluster.endpoints
    proc, url = start_server(data / "server", args.backend, endpoints, args.workers)
    try:
        ctx = client_ssl(data / "server")
        asyncio.run(seed(url, ctx, 100))
        coll = f"{url}{BASE}/namespaces/{NS}/flunders"
        scenarios = [("get one object", f"{coll}/seed-0042", None), ("list 100 objects", coll, None),
                     ("list 100 objects, resourceVersion=0", f"{coll}?resourceVersion=0", None),
                     ("create", coll, LUA_CREATE), ("merge-patch (100 objects)", coll, LUA_PATCH)]
        print(f"backend={args.backend} wrk -t2 -c32 -d{args.duration}s over HTTPS (127.0.0.1); {os.cpu_count()} cores")
        print(f"{'scenario':40} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'server CPU':>11}")
        for label, target, script in scenarios:
            c0, t0 = cpu_seconds(proc.pid), time.monotonic()
            v = wrk(target, args.duration, script)
            cpu = (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0)
            print(f"{label:40} {v['rps']:9.0f} {v['p50_ms']:8.2f} {v['p99_ms']:8.2f} {v['non2xx']:8d} "
                  f"{100 * cpu:10.0f}%", flush=True)
        for n in [int(x) for x in args.watchers.split(",") if x.strip()]:
            w = uvloop.run(watch_latency(url, ctx, n, args.watch_writes, interval=0.02))  # 50 writes/s asked
            print(watch_summary(w), flush=True)
    finally:
        stop(proc)
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
