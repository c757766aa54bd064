"""Load generation for the bench scripts: an open loop at a fixed rate (bounded by count) and a
closed loop over N connections (bounded by time), and the percentiles they print."""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

Request = Callable[[], Awaitable[float]]  # one request; returns its latency in seconds


def pct(xs: list[float], p: float) -> float:
    """The ``p`` quantile of latencies ``xs`` (seconds), in milliseconds."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000


async def open_loop(one: Request, rate: float, duration: float) -> tuple[list[float], float]:
    """``rate * duration`` requests started on schedule whatever the answers' pace (so a slow
    server shows as latency, not as a lower offered rate); (latencies, seconds taken)."""
    n = int(rate * duration)
    start = time.perf_counter()
    tasks = []
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one()))
    lat = await asyncio.gather(*tasks)
    return list(lat), time.perf_counter() - start


async def closed_loop(one: Request, concurrency: int, duration: float,
                      limit: int = 1_000_000) -> tuple[list[float], float]:
    """``concurrency`` workers sending back to back for ``duration`` seconds (at most ``limit``
    requests); (latencies, seconds taken)."""
    done: list[float] = []
    end = time.perf_counter() + duration

    async def worker() -> None:
        while time.perf_counter() < end and len(done) < limit:
            done.append(await one())

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - t0
