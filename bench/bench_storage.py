"""Micro-benchmark of the embedded storage backend. Prints operations per second.

    python bench/bench_storage.py [--loop asyncio|uvloop] [--dir DIR]

Measures, for sync=full and sync=normal: sequential creates (one writer awaiting each
write), creates from 32 concurrent writers (group commit), CAS updates from 32 writers on
distinct keys, gets, ranges of 100 keys at the newest and at an older revision, and the
time to start (reload) the resulting store.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Awaitable, Callable

from extserver.storage.embedded import EmbeddedBackend


async def rate(label: str, n: int, run: Callable[[], Awaitable[None]]) -> None:
    t0 = time.perf_counter()
    await run()
    dt = time.perf_counter() - t0
    print(f"  {label:<38} {n / dt:>10,.0f} /s   ({n} in {dt:.2f}s)")


async def bench(sync: str, root: Path, scale: int) -> None:
    print(f"sync={sync}")
    backend = EmbeddedBackend(root / sync, sync=sync, compaction_interval=0)  # type: ignore[arg-type]
    await backend.start()
    try:
        seq = 500 * scale if sync == "full" else 2000 * scale

        async def sequential() -> None:
            for i in range(seq):
                await backend.create(f"/seq/{i:07d}", b"x" * 512)
        await rate("create, sequential", seq, sequential)

        per_writer = 300 * scale

        async def writer(w: int) -> None:
            for i in range(per_writer):
                await backend.create(f"/c/{w:02d}/{i:07d}", b"x" * 512)

        async def concurrent() -> None:
            await asyncio.gather(*(writer(w) for w in range(32)))
        await rate("create, 32 concurrent writers", 32 * per_writer, concurrent)

        async def updater(w: int) -> None:
            kv, _ = await backend.get(f"/c/{w:02d}/0000000")
            for _ in range(per_writer):
                assert kv is not None
                kv = await backend.update(kv.key, b"y" * 512, kv.mod_revision)

        async def updates() -> None:
            await asyncio.gather(*(updater(w) for w in range(32)))
        await rate("update (CAS), 32 concurrent writers", 32 * per_writer, updates)

        keys = [f"/c/{w:02d}/{i:07d}" for w in range(32) for i in range(per_writer)]
        rng = random.Random(1)
        sample = [rng.choice(keys) for _ in range(100_000)]

        async def gets() -> None:
            for k in sample:
                await backend.get(k)
        await rate("get", len(sample), gets)

        old = await backend.current_revision() - 32 * per_writer // 2
        starts = [rng.choice(keys) for _ in range(2000)]

        async def ranges(revision: int) -> None:
            for k in starts:
                res = await backend.range("/c/", start_key=k, limit=100, revision=revision)
                assert res.kvs
        await rate("range of 100, newest", len(starts), lambda: ranges(0))
        await rate("range of 100, older revision", len(starts), lambda: ranges(old))
    finally:
        await backend.close()
    t0 = time.perf_counter()
    reopened = EmbeddedBackend(root / sync, sync=sync, compaction_interval=0)  # type: ignore[arg-type]
    await reopened.start()
    revisions = await reopened.current_revision() - 1
    print(f"  {'start (reload ' + str(revisions) + ' revisions)':<38} {time.perf_counter() - t0:>10.2f} s")
    await reopened.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--dir", help="directory for the stores (default: a temporary directory)")
    parser.add_argument("--scale", type=int, default=1, help="multiply the operation counts")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop
        uvloop.install()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for sync in ("full", "normal"):
            asyncio.run(bench(sync, Path(tmp), args.scale))


if __name__ == "__main__":
    main()
