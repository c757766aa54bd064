"""Measure the candidate etcd v3 clients against a real local etcd, to choose one.

Candidates (each runs in its own subprocess: the two packages register the same protobuf
symbols, ``mvccpb.KeyValue`` ..., so they cannot be imported into one process):

* ``grpc-aio``          raw ``grpc.aio`` stubs shipped by ``etcd-sdk-python`` (``pyetcd.etcdrpc``)
* ``grpc-aio+uvloop``   the same on a uvloop event loop (the server's loop)
* ``etcd3aio``          the ``etcd3aio`` async client (its KV and Watch services)

Per candidate: puts/s one at a time and with 32 in flight, ranges of 100 keys/s one at a
time and with 32 in flight, and watch latency (put sent -> event received) p50/p99.
Every phase is bounded by a count and by ``--seconds``.

    python bench/bench_etcd_clients.py                # starts etcd in a temp dir
    python bench/bench_etcd_clients.py --endpoint 127.0.0.1:2379
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Awaitable, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CANDIDATES = ["grpc-aio", "grpc-aio+uvloop", "etcd3aio"]
VALUE = b'{"apiVersion":"wardle.example.com/v1alpha1","kind":"Flunder","metadata":{}}'.ljust(500, b" ")


def prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


async def timed(op: Callable[[int], Awaitable[Any]], *, count: int, seconds: float, inflight: int) -> float:
    """Run ``op(i)`` up to ``count`` times (``inflight`` concurrently) or for ``seconds``; ops/s."""
    counter = iter(range(count))
    deadline = time.perf_counter() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        for i in counter:
            if time.perf_counter() > deadline:
                return
            await op(i)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return done / (time.perf_counter() - start)


class Raw:
    """Raw grpc.aio stubs from etcd-sdk-python."""

    def __init__(self, endpoint: str):
        import grpc.aio
        from pyetcd.etcdrpc import rpc_pb2, rpc_pb2_grpc
        self.pb = rpc_pb2
        self.channel = grpc.aio.insecure_channel(endpoint)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.watch_stub = rpc_pb2_grpc.WatchStub(self.channel)

    async def put(self, key: bytes, value: bytes) -> None:
        await self.kv.Put(self.pb.PutRequest(key=key, value=value), timeout=10)

    async def range(self, prefix: bytes) -> int:
        resp = await self.kv.Range(self.pb.RangeRequest(key=prefix, range_end=prefix_end(prefix)), timeout=10)
        return len(resp.kvs)

    async def watch(self, prefix: bytes, events: asyncio.Queue, ready: asyncio.Event) -> None:
        pb = self.pb

        async def requests():
            yield pb.WatchRequest(create_request=pb.WatchCreateRequest(
                key=prefix, range_end=prefix_end(prefix), prev_kv=True))
            await asyncio.Event().wait()

        call = self.watch_stub.Watch(requests())
        try:
            async for resp in call:
                if resp.created:
                    ready.set()
                for ev in resp.events:
                    events.put_nowait((ev.kv.key, time.perf_counter()))
        finally:
            call.cancel()

    async def close(self) -> None:
        await self.channel.close()


class Aio:
    """etcd3aio's client."""

    def __init__(self, endpoint: str):
        from etcd3aio import Etcd3Client
        self.client = Etcd3Client([endpoint])

    async def start(self) -> None:
        await self.client.connect()

    async def put(self, key: bytes, value: bytes) -> None:
        await self.client.kv.put(key, value, timeout=10)

    async def range(self, prefix: bytes) -> int:
        return len((await self.client.kv.get(prefix, prefix_end(prefix), timeout=10)).kvs)

    async def watch(self, prefix: bytes, events: asyncio.Queue, ready: asyncio.Event) -> None:
        async for resp in self.client.watch.watch(prefix, prefix_end(prefix), prev_kv=True):
            if resp.created:
                ready.set()
            for ev in resp.events:
                events.put_nowait((ev.kv.key, time.perf_counter()))

    async def close(self) -> None:
        await self.client.close()


async def run_worker(candidate: str, endpoint: str, seconds: float) -> dict[str, float]:
    client: Any = Aio(endpoint) if candidate == "etcd3aio" else Raw(endpoint)
    if isinstance(client, Aio):
        await client.start()
    tag = f"/bench-clients/{candidate}/{os.getpid()}/".encode()
    out: dict[str, float] = {}
    def put(i: int) -> Awaitable[None]:
        return client.put(tag + b"p/%d" % i, VALUE)

    out["put_seq"] = await timed(put, count=5000, seconds=seconds, inflight=1)
    out["put_32"] = await timed(put, count=50000, seconds=seconds, inflight=32)
    rprefix = tag + b"r/"
    await asyncio.gather(*(client.put(rprefix + b"%03d" % i, VALUE) for i in range(100)))
    assert await client.range(rprefix) == 100
    out["range100_seq"] = await timed(lambda i: client.range(rprefix), count=20000, seconds=seconds, inflight=1)
    out["range100_32"] = await timed(lambda i: client.range(rprefix), count=50000, seconds=seconds, inflight=32)

    wprefix = tag + b"w/"
    events: asyncio.Queue = asyncio.Queue()
    ready = asyncio.Event()
    watcher = asyncio.create_task(client.watch(wprefix, events, ready))
    await asyncio.wait_for(ready.wait(), 10)
    latencies = []
    deadline = time.perf_counter() + seconds
    for i in range(1000):
        if time.perf_counter() > deadline:
            break
        key = wprefix + b"%d" % i
        sent = time.perf_counter()
        await client.put(key, VALUE)
        got_key, received = await asyncio.wait_for(events.get(), 10)
        assert got_key == key
        latencies.append((received - sent) * 1000)
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    latencies.sort()
    out["watch_p50_ms"] = statistics.median(latencies)
    out["watch_p99_ms"] = latencies[int(len(latencies) * 0.99) - 1]
    await client.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", help="host:port of a running etcd (default: start one in a temp dir)")
    ap.add_argument("--seconds", type=float, default=5.0, help="time bound per phase")
    ap.add_argument("--worker", choices=CANDIDATES, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        if args.worker.endswith("+uvloop"):
            import uvloop
            result = uvloop.run(run_worker(args.worker, args.endpoint, args.seconds))
        else:
            result = asyncio.run(run_worker(args.worker, args.endpoint, args.seconds))
        print(json.dumps(result))
        return

    sys.path.insert(0, ROOT)
    from tests.etcd_cluster import EtcdCluster

    with tempfile.TemporaryDirectory(prefix="bench-etcd-") as tmp:
        cluster = EtcdCluster(tmp).start() if not args.endpoint else None
        endpoint = args.endpoint or cluster.endpoints[0]  # type: ignore[union-attr]
        try:
            print(f"etcd at {endpoint}; {args.seconds:.0f}s per phase; value {len(VALUE)} bytes")
            cols = ["put_seq", "put_32", "range100_seq", "range100_32", "watch_p50_ms", "watch_p99_ms"]
            print(f"{'client':18}" + "".join(f"{c:>14}" for c in cols))
            for cand in CANDIDATES:
                proc = subprocess.run([sys.executable, __file__, "--worker", cand, "--endpoint", endpoint,
                                       "--seconds", str(args.seconds)], capture_output=True, text=True,
                                      timeout=args.seconds * 10 + 60)
                if proc.returncode != 0:
                    print(f"{cand:18} FAILED: {proc.stderr.strip().splitlines()[-1:]}")
                    continue
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                print(f"{cand:18}" + "".join(f"{res[c]:>14.1f}" if c.endswith("ms") else f"{res[c]:>14.0f}"
                                             for c in cols))
        finally:
            if cluster:
                cluster.stop()


if __name__ == "__main__":
    main()
