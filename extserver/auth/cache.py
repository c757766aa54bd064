"""A bounded TTL cache with single-flight loading, for TokenReview and SubjectAccessReview
answers: concurrent misses on one key share one review."""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    """``get_or_load(key, load, ttl_of)``: a fresh entry, or ``load()`` once for all
    concurrent callers; the result is kept for ``ttl_of(result)`` seconds (<= 0: not kept).
    An exception from ``load`` reaches every waiter and is not cached."""

    def __init__(self, max_size: int = 16384, clock: Callable[[], float] = time.monotonic):
        self.max_size = max_size
        self.clock = clock
        self._data: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._loading: dict[Hashable, asyncio.Future] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        self._data.clear()

    def get(self, key: Hashable) -> tuple[bool, V | None]:
        entry = self._data.get(key)
        if entry is None:
            return False, None
        if entry[0] <= self.clock():
            del self._data[key]
            return False, None
        self._data.move_to_end(key)
        return True, entry[1]

    def put(self, key: Hashable, value: V, ttl: float) -> None:
        if ttl <= 0:
            return
        self._data[key] = (self.clock() + ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_size:
            self._data.popitem(last=False)

    async def get_or_load(self, key: Hashable, load: Callable[[], Awaitable[V]],
                          ttl_of: Callable[[V], float]) -> V:
        found, value = self.get(key)
        if found:
            self.hits += 1
            return value  # type: ignore[return-value]
        self.misses += 1
        fut = self._loading.get(key)
        if fut is None:
            fut = asyncio.ensure_future(self._load(key, load, ttl_of))
            fut.add_done_callback(_consume)
            self._loading[key] = fut
        # shield: a waiter that is cancelled (client went away) does not cancel the others
        return await asyncio.shield(fut)

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[V]], ttl_of: Callable[[V], float]) -> V:
        try:
            value = await load()
            self.put(key, value, ttl_of(value))
            return value
        finally:
            self._loading.pop(key, None)


def _consume(fut: asyncio.Future) -> None:
    """Mark the exception of a load whose waiters all went away as retrieved."""
    if not fut.cancelled():
        fut.exception()
