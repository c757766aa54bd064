"""The watch fan-out: signalling the listening feeds of a write, in slices.

A write reaches every listening :class:`~extserver.storage.interface.WatchFeed` through
one :class:`Dispatcher` (one per backend): the feeds to signal join a FIFO queue, and the
queue is worked off in slices of about :data:`SLICE_SECONDS`, returning to the event loop
between slices, so that requests and the storage's own callbacks are not held up behind a
thousand watchers. A feed already waiting in the queue is not queued twice: when its turn
comes its listener takes every event that arrived meanwhile, in one write to its client.
Under load the fan-out thus coalesces (fewer, larger writes per watcher) instead of
falling behind event by event, and every watcher keeps its place in line."""
from __future__ import annotations

import asyncio
import collections
import time
from typing import Iterable

from .interface import WatchFeed

#: the longest the fan-out runs before letting the event loop serve other work
SLICE_SECONDS = 0.002
#: feeds signalled between two looks at the clock
_CHECK_EVERY = 32


class Dispatcher:
    """Signals feeds in FIFO order, in slices (see the module docstring)."""

    def __init__(self, slice_seconds: float = SLICE_SECONDS):
        self.slice_seconds = slice_seconds
        self._queue: collections.deque[WatchFeed] = collections.deque()
        self._queued: set[WatchFeed] = set()
        self._scheduled = False
        #: slices run so far (a slice ends by the clock or with the queue)
        self.slices = 0

    def signal(self, feeds: Iterable[WatchFeed]) -> None:
        """Queue ``feeds`` (those with a listener) to be signalled."""
        queue, queued = self._queue, self._queued
        for feed in feeds:
            if feed._listener is not None and feed not in queued:
                queued.add(feed)
                queue.append(feed)
        if queue and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        self.slices += 1
        queue, queued = self._queue, self._queued
        deadline = time.perf_counter() + self.slice_seconds
        n = 0
        while queue:
            feed = queue.popleft()
            queued.discard(feed)
            feed._signal()
            n += 1
            if n % _CHECK_EVERY == 0 and time.perf_counter() > deadline:
                break
        if queue:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run)
