"""The raw etcd floor: what etcd itself allows on this machine, through the same client
library the etcd3 backend uses (``extserver.storage.etcd3.EtcdClient``: grpc.aio stubs).

Measures, one at a time and with 32 in flight:

* ``put``       a plain Put of a 500-byte value
* ``txn``       a create as the backend does it (Txn: create_revision == 0 -> Put, else Range)
* ``get``       a single-key linearizable Range
* ``range100``  a Range over a prefix holding 100 keys

Each phase is bounded by ``--count`` operations and ``--seconds``. The server's write rate
can then be stated as a fraction of these numbers.

    python bench/bench_etcd_floor.py                     # starts etcd in a temp dir
    python bench/bench_etcd_floor.py --endpoint http://127.0.0.1:2379 --json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from typing import Awaitable, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyetcd.etcdrpc import rpc_pb2 as pb  # noqa: E402

from extserver.storage.etcd3 import EtcdClient, prefix_range_end  # noqa: E402

VALUE = b'{"apiVersion":"wardle.example.com/v1alpha1","kind":"Flunder","metadata":{}}'.ljust(500, b" ")


async def rate(op: Callable[[int], Awaitable[object]], *, count: int, seconds: float, inflight: int) -> float:
    """Operations per second of ``op(i)`` with ``inflight`` concurrent callers, bounded by
    ``count`` operations and ``seconds``."""
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


async def measure(endpoint: str, count: int, seconds: float) -> dict[str, float]:
    client = EtcdClient([endpoint])
    await client.connect()
    run = f"/bench-floor/{os.getpid()}-{int(time.time())}/".encode()
    results: dict[str, float] = {}
    try:
        def put(tag: bytes) -> Callable[[int], Awaitable[object]]:
            return lambda i: client.put(pb.PutRequest(key=run + tag + b"%d" % i, value=VALUE))

        def create(tag: bytes) -> Callable[[int], Awaitable[object]]:
            def op(i: int) -> Awaitable[object]:
                key = run + tag + b"%d" % i
                return client.txn(pb.TxnRequest(
                    compare=[pb.Compare(key=key, target=pb.Compare.CREATE, result=pb.Compare.EQUAL,
                                        create_revision=0)],
                    success=[pb.RequestOp(request_put=pb.PutRequest(key=key, value=VALUE))],
                    failure=[pb.RequestOp(request_range=pb.RangeRequest(key=key))]))
            return op

        hundred = run + b"list/"
        await asyncio.gather(*(client.put(pb.PutRequest(key=hundred + b"%03d" % i, value=VALUE))
                               for i in range(100)))
        one = pb.RangeRequest(key=hundred + b"050")
        many = pb.RangeRequest(key=hundred, range_end=prefix_range_end(hundred))
        assert len((await client.range(many)).kvs) == 100

        for inflight, suffix in ((1, "seq"), (32, "32")):
            results[f"put_{suffix}"] = await rate(put(b"p%s/" % suffix.encode()), count=count, seconds=seconds,
                                                  inflight=inflight)
            results[f"txn_{suffix}"] = await rate(create(b"t%s/" % suffix.encode()), count=count,
                                                  seconds=seconds, inflight=inflight)
            results[f"get_{suffix}"] = await rate(lambda i: client.range(one), count=count, seconds=seconds,
                                                  inflight=inflight)
            results[f"range100_{suffix}"] = await rate(lambda i: client.range(many), count=count,
                                                       seconds=seconds, inflight=inflight)
        # leave the etcd as we found it (and keep later reads fast): drop our keys, compact
        resp = await client.delete_range(pb.DeleteRangeRequest(key=run, range_end=prefix_range_end(run)))
        await client.compact(resp.header.revision)
    finally:
        await client.close()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", help="etcd client URL or host:port (default: start one in a temp dir)")
    ap.add_argument("--count", type=int, default=20_000, help="max operations per phase")
    ap.add_argument("--seconds", type=float, default=5.0, help="max seconds per phase")
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                    help="event loop (the server runs on uvloop)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args()

    from tests.etcd_cluster import EtcdCluster

    with tempfile.TemporaryDirectory(prefix="bench-etcd-floor-") as tmp:
        cluster = None if args.endpoint else EtcdCluster(tmp).start()
        endpoint = args.endpoint or cluster.client_urls[0]  # type: ignore[union-attr]
        try:
            if args.loop == "uvloop":
                import uvloop
                results = uvloop.run(measure(endpoint, args.count, args.seconds))
            else:
                results = asyncio.run(measure(endpoint, args.count, args.seconds))
        finally:
            if cluster:
                cluster.stop()
    if args.json:
        print(json.dumps({k: round(v, 1) for k, v in results.items()}))
        return
    print(f"raw etcd floor at {endpoint} on {args.loop} (value {len(VALUE)} bytes; <= {args.count} ops or "
          f"{args.seconds:.0f}s per phase)")
    print(f"{'operation':12}{'1 at a time':>14}{'32 in flight':>14}   (ops/s)")
    for op in ("put", "txn", "get", "range100"):
        print(f"{op:12}{results[op + '_seq']:>14,.0f}{results[op + '_32']:>14,.0f}")


if __name__ == "__main__":
    main()
