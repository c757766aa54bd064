#!/usr/bin/env python3
"""The aggregator's path: requests/s, p50/p99 latency and the server's CPU, through a TLS front
proxy that presents the front-proxy client certificate and ``X-Remote-*`` headers.

What every request pays here and not in ``bench_api.py`` (the anonymous lower bound): the
front-proxy certificate check and identity headers, the delegated authorizer
(SubjectAccessReview to the kube-apiserver TEST stand-in of tests/standin, with its
allow/deny caches), audit (``--audit-log-path`` + a Metadata policy, unless ``--no-audit``),
metrics and the klog-style log at ``-v 0``.

Topology (all on 127.0.0.1)::

    wrk -t2 -c32  --HTTP/1.1-->  haproxy  --TLS + front-proxy client cert, keep-alive pool-->
        extserver serve (cluster mode)  --SAR (cached)-->  stand-in

haproxy (Debian package ``haproxy``) adds ``X-Remote-User: bench-user`` (not in
``system:masters``, so authorization is delegated) and two ``X-Remote-Group`` headers, as
kube-aggregator does, and keeps connections to the server alive (``http-reuse always``).
Watch delivery goes through the same proxy. Every loop is bounded in count and time.

    python bench/bench_frontproxy.py [--backend embedded|etcd3] [--duration 8] [--no-audit]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_api import (BASE, LUA_CREATE, LUA_PATCH, NS, cpu_seconds, seed, stop, watch_latency,  # noqa: E402
                       watch_summary, wrk)

USER, GROUPS = "bench-user", ["bench-group", "system:authenticated"]
AUDIT_POLICY = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def haproxy_config(listen: int, server_port: int, ca: Path, client_pem: Path, stats: int) -> str:
    groups = "\n".join(f"    http-request add-header X-Remote-Group {g}" for g in GROUPS)
    return f"""global
    maxconn 8192
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 60s
    option http-keep-alive
    option http-no-delay  # forward each watch event as it arrives (no coalescing), as the aggregator proxy does
frontend fe
    bind 127.0.0.1:{listen}
    http-request del-header X-Remote-User
    http-request del-header X-Remote-Group
    http-request set-header X-Remote-User {USER}
{groups}
    default_backend be
backend be
    http-reuse always
    server s1 127.0.0.1:{server_port} ssl verify required ca-file {ca} crt {client_pem} sni str(localhost) maxconn 4000
frontend stats
    bind 127.0.0.1:{stats}
    http-request return status 200 content-type text/plain string ok
"""


def main() -> None:
    from extserver.cli import raise_open_files_limit
    from tests.e2e.cluster_harness import ClusterEnv
    raise_open_files_limit()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="embedded", choices=["embedded", "etcd3"])
    ap.add_argument("--duration", type=int, default=8, help="seconds per wrk scenario (max 60)")
    ap.add_argument("--no-audit", action="store_true", help="run without the audit log")
    ap.add_argument("--watch-writes", type=int, default=200, help="writes per watch scenario, 50 a second (max 1000)")
    ap.add_argument("--watchers", default="100,1000", help="comma-separated watcher counts ('' for none)")
    ap.add_argument("--scenarios", default="get,list,create,merge-patch",
                    help="comma-separated wrk scenarios to run, by their first word ('' for none)")
    ap.add_argument("--server-args", default="", help="extra 'extserver serve' flags (e.g. '--workers 2')")
    ap.add_argument("--profile", default="", metavar="SCENARIO=FILE",
                    help="record the server with py-spy during one scenario, e.g. 'get=/tmp/get.txt' or "
                         "'watch1000=/tmp/w.txt' (the writes to 1,000 watchers) "
                         "(collapsed stacks; py-spy from PyPI)")
    args = ap.parse_args()
    args.duration = max(1, min(args.duration, 60))
    args.watch_writes = max(1, min(args.watch_writes, 1000))
    for tool in ("wrk", "haproxy"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed: apt-get install -y {tool}")
    work = Path(tempfile.mkdtemp(prefix="extserver-fpbench-"))
    env = ClusterEnv()
    env.standin.allow_users(USER)
    cluster = haproxy = server = None
    try:
        data = work / "server"
        data.mkdir()
        cmd = [sys.executable, "-m", "extserver.cli", "serve", "--bind-address", "127.0.0.1", "--secure-port", "0",
               "--data-dir", str(data), "--storage-backend", args.backend, *env.server_args(),
               "--max-requests-inflight", "0", "--max-mutating-requests-inflight", "0", *args.server_args.split()]
        if not args.no_audit:
            (work / "audit-policy.yaml").write_text(AUDIT_POLICY)
            cmd += ["--audit-log-path", str(work / "audit.log"), "--audit-policy-file", str(work / "audit-policy.yaml")]
        if args.backend == "etcd3":
            from tests.etcd_cluster import EtcdCluster
            cluster = EtcdCluster(work / "etcd", size=1).start()
            cmd += ["--etcd-servers", ",".join(cluster.endpoints)]
        log = open(work / "server.log", "w")
        server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO))
        deadline = time.monotonic() + 60
        port = None
        while time.monotonic() < deadline and port is None:
            m = re.search(r" on https://[\d.]+:(\d+)", (work / "server.log").read_text())
            if m:
                port = int(m.group(1))
            elif server.poll() is not None:
                break
            time.sleep(0.1)
        if port is None:
            raise SystemExit("server did not start:\n" + (work / "server.log").read_text()[-2000:])
        client_pem = work / "proxy-client.pem"
        client_pem.write_bytes(env.proxy.cert_file.read_bytes() + env.proxy.key_file.read_bytes())
        listen, stats = free_port(), free_port()
        (work / "haproxy.cfg").write_text(haproxy_config(listen, port, data / "certs" / "apiserver-ca.crt",
                                                         client_pem, stats))
        haproxy = subprocess.Popen(["haproxy", "-db", "-f", str(work / "haproxy.cfg")],
                                   stdout=subprocess.DEVNULL, stderr=open(work / "haproxy.log", "w"))
        proxy = f"http://127.0.0.1:{listen}"
        import urllib.request
        deadline = time.monotonic() + 60
        while True:  # ready: the proxy answers and the server's post-start hooks ran
            try:
                with urllib.request.urlopen(f"{proxy}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("proxy/server not ready:\n" + (work / "server.log").read_text()[-2000:])
            time.sleep(0.2)
        asyncio.run(seed(proxy, None, 100))  # through the proxy, as the front-proxy user
        coll = f"{proxy}{BASE}/namespaces/{NS}/flunders"
        scenarios = [("get one object", f"{coll}/seed-0042", None), ("list 100 objects", coll, None),
                     ("list 100 objects, resourceVersion=0", f"{coll}?resourceVersion=0", None),
                     ("create", coll, LUA_CREATE), ("merge-patch (100 objects)", coll, LUA_PATCH)]
        print(f"front-proxy path: backend={args.backend} audit={'off' if args.no_audit else 'Metadata'} "
              f"user={USER} (delegated SAR, cached); wrk -t2 -c32 -d{args.duration}s -> haproxy -> TLS; "
              f"{os.cpu_count()} cores")
        print(f"{'scenario':40} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'server CPU':>11}")
        prof_name, _, prof_file = args.profile.partition("=")
        wanted = {x.strip() for x in args.scenarios.split(",") if x.strip()}
        for label, url, script in scenarios:
            if label.split()[0] not in wanted:
                continue
            spy = None
            if prof_name and label.startswith(prof_name):
                spy = subprocess.Popen(["py-spy", "record", "--pid", str(server.pid), "--format", "raw", "--rate",
                                        "200", "--duration", str(args.duration), "--output", prof_file],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            c0, t0 = cpu_seconds(server.pid), time.monotonic()
            r = wrk(url, args.duration, script)
            if spy is not None:
                spy.wait(60)
            cpu = (cpu_seconds(server.pid) - c0) / (time.monotonic() - t0)
            print(f"{label:40} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['non2xx']:8d} "
                  f"{100 * cpu:10.0f}%", flush=True)
        for n in [int(x) for x in args.watchers.split(",") if x.strip()]:
            c0, h0, b0, t0 = cpu_seconds(server.pid), cpu_seconds(haproxy.pid), time.process_time(), time.monotonic()
            spies = []
            if prof_name == f"watch{n}":  # once every watcher is open, for the writes
                spies.append(lambda: subprocess.Popen(
                    ["py-spy", "record", "--nonblocking", *(["--native"] if os.environ.get("PYSPY_NATIVE") else []),
                     "--pid", str(server.pid), "--format", "raw", "--rate", "200",
                     "--duration", str(max(1, int(args.watch_writes * 0.02))), "--output", prof_file],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            w = uvloop.run(watch_latency(proxy, None, n, args.watch_writes, interval=0.02,  # 50 writes/s
                                         on_ready=spies[0] if spies else None))
            dt = time.monotonic() - t0
            cpu = [100 * (cpu_seconds(server.pid) - c0) / dt, 100 * (cpu_seconds(haproxy.pid) - h0) / dt,
                   100 * (time.process_time() - b0) / dt]
            print(f"{watch_summary(w)}; CPU server {cpu[0]:.0f}% haproxy {cpu[1]:.0f}% bench client "
                  f"{cpu[2]:.0f}% (whole phase, connecting included)", flush=True)
        sars = len(env.standin.access_reviews)
        print(f"SubjectAccessReviews sent to the stand-in during the run: {sars}")
    finally:
        for p in (haproxy, server):
            stop(p)
        if cluster is not None:
            cluster.stop()
        env.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
