"""The watch cache: one storage watch per resource, many API watchers (as kube's Cacher).

:class:`Cacher` wraps any :class:`~extserver.storage.interface.Backend`. Writes, consistent
reads (``get``, ``range``) and compaction go straight to the wrapped backend; watches and
"not older than" lists are served from memory:

* **One inner watch per resource.** A key ``/<group>/<plural>/<namespace>/<name>`` belongs to
  the resource prefix ``/<group>/<plural>/``. The first watch or cached list under a
  resource prefix starts a :class:`_ResourceCache` for it: it lists the prefix (paged, at
  one revision) into memory and opens ONE inner watch from that revision. Every API watch
  under the resource (all namespaces, any sub-prefix) is fed from that watch; a prefix
  shorter than a resource prefix goes to the inner backend unchanged.
* **Current state + a ring of recent events.** The cache keeps the current objects (a dict
  and a sorted key list) and the recent events in a ring. ``range_not_older_than`` answers
  ``resourceVersion=0`` / ``NotOlderThan`` lists from the current objects.
* **Ring size (dynamic, as kube's watch cache).** The ring starts at ``watch_cache_size``
  events (``--default-watch-cache-size``, 100) and doubles, up to ``max_watch_cache_size``
  (102,400, kube's upper bound), whenever it is full while its oldest event is younger than
  ``event_fresh_duration`` (75 s): a burst of writes grows it so that watchers can resume
  within the last 75 s; it halves again (not below ``watch_cache_size``) once its newest
  quarter spans more than 75 s. Memory is bounded by ``max_watch_cache_size`` events per
  resource plus the current objects.
* **Watch window.** A watch from a revision at or after the window start (the revision of
  the newest event dropped from the ring, or the cache's initial list) replays the buffered
  events after it, then streams live events. An older revision raises
  :class:`~extserver.storage.interface.Compacted` (the API answers 410 "too old resource
  version", as kube does when a revision is older than its cache window).
* **Cheap fan-out.** Watchers are cursors into the shared ring: appending an event is
  O(1) however many watchers there are (one wake-up per batch), a watcher's events are
  the ring's own ``Event`` objects (so the registry's per-(key, revision) encoding cache
  serializes each event once per encoding), and a watcher holds no copy of anything.
* **Slow watchers are cut off.** A watcher more than ``watcher_queue_limit`` live events
  behind, or whose next event has already left the ring, gets
  :class:`~extserver.storage.interface.WatcherTooSlow`; it never holds memory or writers.
  So does, as in kube, one that stays more than its buffer (kube's watch channel size)
  behind for longer than kube's dispatch budget, and its connection is closed
  (:mod:`.slowwatch`).
* **Recovery.** If the inner watch ends (``Compacted``, ``Unavailable``, any storage error),
  every watcher of that resource gets ``Compacted`` (the API sends a 410 ERROR event and
  clients relist), and the cache lists and watches again (with backoff) before serving.
* **Freshness.** ``range_not_older_than(prefix, n)`` serves memory once the cache has seen
  revision ``n``. The cache only learns revisions through its resource's events, so when
  ``n`` is a revision that exists in storage but the cache has not reached it within
  ``catch_up_wait`` (usually because nothing of this resource changed since), it reads
  through the inner backend (the newest data satisfies "not older than"). A revision beyond
  the storage's current one is waited for up to ``fresh_timeout`` (3 s, as kube), then
  :class:`~extserver.storage.interface.FutureRevision`.
* **Progress.** :meth:`Cacher.watch` returns a :class:`CacheWatch` whose
  ``progress_revision`` is a revision up to which the watcher has received every event:
  the handler may send it as a periodic BOOKMARK.
"""
from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import re
import time
from typing import AsyncIterator, Callable

from .interface import (Backend, Compacted, DelegatingBackend, Event, FutureRevision, KeyValue, RangeResult,
                        StorageError, Unavailable, WatchFeed, WatcherTooSlow, prefix_end)
from .dispatch import Dispatcher
from .slowwatch import Stall, buffer_size

log = logging.getLogger(__name__)

#: kube's defaults: lower bound (--default-watch-cache-size), upper bound, event freshness
DEFAULT_WATCH_CACHE_SIZE = 100
MAX_WATCH_CACHE_SIZE = 100 * 1024
EVENT_FRESH_DURATION = 75.0
#: the most events handed to a watcher in one batch
_MAX_BATCH = 1000
#: keys per page while (re)listing a resource into the cache
_LIST_PAGE = 10_000
_RESOURCE_PREFIX = re.compile(r"^/[^/]+/[^/]+/")


def resource_prefix(prefix: str) -> str | None:
    """``/<group>/<plural>/`` for a key or prefix under it; None for shorter prefixes."""
    m = _RESOURCE_PREFIX.match(prefix)
    return m.group(0) if m else None




class _ResourceCache:
    """The cached state, the ring of recent events and the inner watch of one resource.

    Ring layout: ``_events[_first:]`` are the live entries; an entry's *sequence number* is
    ``_base + index`` and never changes, so watchers keep their position as a number."""

    def __init__(self, owner: Cacher, prefix: str, start_revision: int):
        self.owner = owner
        self.prefix = prefix
        self.objects: dict[str, KeyValue] = {}
        self.keys: list[str] = []
        #: every event of this resource up to ``revision`` has been applied
        self.revision = 0
        #: events with revision > ``window_start`` are all in the ring
        self.window_start = 0
        self.capacity = owner.watch_cache_size
        self._events: list[Event] = []
        self._times: list[float] = []
        self._first = 0
        self._base = 0
        self.ready = asyncio.Event()
        self.changed = asyncio.Event()
        self.watchers: set[CacheWatch] = set()
        #: the watchers that take events as they come (see WatchFeed.listen)
        self.listening: set[CacheWatch] = set()
        self.relists = 0
        self.failure = ""
        self.task = asyncio.get_running_loop().create_task(self._run(start_revision),
                                                           name=f"watch-cache {prefix}")

    # -- the ring -----------------------------------------------------------------------
    @property
    def head(self) -> int:
        """Sequence number the next event will get."""
        return self._base + len(self._events)

    @property
    def tail(self) -> int:
        """Sequence number of the oldest event still in the ring."""
        return self._base + self._first

    def __len__(self) -> int:
        return len(self._events) - self._first

    def event(self, seq: int) -> Event:
        return self._events[seq - self._base]

    def seq_after(self, revision: int) -> int:
        """Sequence number of the first buffered event with a revision > ``revision``."""
        i = bisect.bisect_right(self._events, revision, lo=self._first, key=lambda e: e.revision)
        return self._base + i

    def _drop_oldest(self, n: int) -> None:
        if n <= 0:
            return
        self.window_start = self._events[self._first + n - 1].revision
        self._first += n
        if self._first > 1024 and self._first * 2 > len(self._events):
            del self._events[:self._first]
            del self._times[:self._first]
            self._base += self._first
            self._first = 0

    def _resize_if_full(self, now: float) -> None:
        """kube's watch cache sizing: grow while the window is younger than the fresh
        duration, shrink while its newest quarter is older."""
        size = len(self)
        if size < self.capacity:
            return
        fresh = self.owner.event_fresh_duration
        if now - self._times[self._first] < fresh and self.capacity < self.owner.max_watch_cache_size:
            self.capacity = min(self.capacity * 2, self.owner.max_watch_cache_size)
        elif (self.capacity > self.owner.watch_cache_size
              and now - self._times[len(self._times) - self.capacity // 4] > fresh):
            self.capacity = max(self.capacity // 2, self.owner.watch_cache_size)
            self._drop_oldest(size - self.capacity)

    def apply(self, batch: list[Event]) -> None:
        """Apply a batch from the inner watch: state, ring, wake the watchers."""
        now = time.monotonic()
        objects, keys = self.objects, self.keys
        for ev in batch:
            if ev.revision <= self.revision:
                continue  # never applied twice (a defensive guard; the inner watch does not repeat)
            if ev.type == "DELETE":
                if objects.pop(ev.key, None) is not None:
                    del keys[bisect.bisect_left(keys, ev.key)]
            else:
                if ev.key not in objects:
                    bisect.insort(keys, ev.key)
                objects[ev.key] = ev.kv
            self._resize_if_full(now)
            if len(self) >= self.capacity:
                self._drop_oldest(len(self) - self.capacity + 1)
            self._events.append(ev)
            self._times.append(now)
            self.revision = ev.revision
        self._cut_stalled(now)
        self._wake()

    def _cut_stalled(self, now: float) -> None:
        """kube's slow-watcher rule (see :mod:`.slowwatch`): terminate the watchers that have
        had more undelivered events than their buffer for longer than the budget."""
        head = self.head
        stalled = [w for w in self.watchers if w.stall.over_budget(head - max(w._next, w._live_from), now)]
        for w in stalled:
            log.warning("Forcing %s watcher close due to unresponsiveness: %d undelivered events, buffer %d",
                        self.prefix, head - max(w._next, w._live_from), w.stall.buffer)
            w._fail(WatcherTooSlow(head - max(w._next, w._live_from), w.stall.buffer))
            w.stall.close()

    def _wake(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()
        if self.listening:
            self.owner.dispatcher.signal(self.listening)

    def snapshot(self, prefix: str) -> RangeResult:
        """Objects under ``prefix`` at :attr:`revision`, ordered by key (no await: consistent)."""
        lo = bisect.bisect_left(self.keys, prefix)
        end = prefix_end(prefix)
        hi = bisect.bisect_left(self.keys, end) if end is not None else len(self.keys)
        objects = self.objects
        kvs = [objects[k] for k in self.keys[lo:hi]]
        return RangeResult(kvs, self.revision, False, len(kvs))

    # -- list and watch -----------------------------------------------------------------
    async def _list(self, revision: int) -> None:
        """Load the resource at ``revision`` (0 = newest) into memory; reset the ring."""
        inner = self.owner.inner
        result = await inner.range(self.prefix, limit=_LIST_PAGE, revision=revision)
        kvs = list(result.kvs)
        while result.more and result.kvs:
            result = await inner.range(self.prefix, start_key=result.kvs[-1].key + "\x00", limit=_LIST_PAGE,
                                       revision=result.revision)
            kvs.extend(result.kvs)
        self.objects = {kv.key: kv for kv in kvs}
        self.keys = [kv.key for kv in kvs]
        self.revision = self.window_start = result.revision
        self._base = self.head
        self._events, self._times = [], []
        self._first = 0
        self.capacity = self.owner.watch_cache_size

    async def _initial_list(self, hint: int) -> None:
        """List at ``hint`` (the revision the first watcher asked for) when the storage still
        has it and it is not too far back, so that watcher is served; else as far back as
        the storage allows, else the newest."""
        inner = self.owner.inner
        if hint > 0:
            try:
                current = await inner.current_revision()
                if current - hint <= self.owner.max_watch_cache_size:
                    try:
                        await self._list(min(hint, current))
                        return
                    except Compacted as exc:
                        if exc.compacted > 0 and current - exc.compacted <= self.owner.max_watch_cache_size:
                            await self._list(exc.compacted)
                            return
            except (Compacted, FutureRevision):
                pass
        await self._list(0)

    async def _run(self, hint: int) -> None:
        backoff = 0.1
        while not self.owner.closed:
            try:
                if hint:
                    await self._initial_list(hint)
                    hint = 0
                else:
                    await self._list(0)
                self.failure = ""
                self.ready.set()
                self._wake()
                backoff = 0.1
                stream = self.owner.inner.watch(self.prefix, self.revision)
                self.owner.inner_watches += 1
                try:
                    async for batch in stream:
                        self.apply(batch)
                finally:
                    aclose = getattr(stream, "aclose", None)
                    if aclose is not None:
                        await aclose()
                reason = "the storage watch ended"
            except Exception as exc:  # noqa: BLE001 - any failure: relist (and say why)
                reason = f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, StorageError):
                    log.exception("watch cache %s failed", self.prefix)
            if self.owner.closed:
                return
            self._invalidate(reason)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _invalidate(self, reason: str) -> None:
        """The inner watch broke: end every watcher with Compacted, relist before serving."""
        log.info("watch cache %s: %s; relisting (%d watchers restart)", self.prefix, reason, len(self.watchers))
        self.failure = reason
        self.relists += 1
        self.ready.clear()
        for w in self.watchers:
            w.error = Compacted(w.last_revision, self.revision)
        self.watchers.clear()
        self._wake()

    def close(self) -> None:
        for w in self.watchers:
            w.closed = True
        self.watchers.clear()
        self._wake()
        self.task.cancel()


class CacheWatch(WatchFeed):
    """One watcher: a cursor into the resource's ring (a :class:`WatchFeed`: iterate it, or
    listen and poll).

    ``progress_revision``: every event up to it (under the watched prefix) has been taken."""

    def __init__(self, cache: _ResourceCache, prefix: str, after_revision: int):
        self._cache = cache
        self._prefix = prefix
        self._filter = prefix != cache.prefix
        self.after_revision = after_revision
        self.last_revision = after_revision
        self._next = -1  # sequence number of the next ring entry to look at (-1: not started)
        self._live_from = 0  # events from this sequence number on arrived after registration
        self.error: StorageError | None = None
        self.closed = False
        self.stall = Stall(buffer_size(cache.capacity, cache.owner.event_fresh_duration))

    @property
    def started(self) -> bool:
        return self._next >= 0

    @property
    def progress_revision(self) -> int:
        cache = self._cache
        if self._next == cache.head and self.error is None and not self.closed and cache.ready.is_set():
            return max(cache.revision, self.last_revision)
        return self.last_revision

    async def _register(self) -> None:
        cache = self._cache
        owner = cache.owner
        if not cache.ready.is_set():
            try:
                async with asyncio.timeout(owner.ready_timeout):
                    await cache.ready.wait()
            except TimeoutError:
                raise Unavailable(f"the watch cache of {cache.prefix} is not ready: "
                                  f"{cache.failure or 'initial list in progress'}") from None
        if self.after_revision < cache.window_start:
            raise Compacted(self.after_revision, cache.window_start)
        self._next = cache.seq_after(self.after_revision)
        self._live_from = cache.head
        cache.watchers.add(self)

    def poll(self) -> list[Event] | None:
        if self.error is not None:
            raise self.error
        cache = self._cache
        if self.closed or cache.owner.closed:
            return None
        if self._next < 0:
            return []  # not registered yet: wait() registers
        limit = cache.owner.watcher_queue_limit
        while True:
            head = cache.head
            if self._next < cache.tail:
                self._fail(WatcherTooSlow(head - self._next, len(cache)))
                raise self.error
            behind = head - max(self._next, self._live_from)
            if behind > limit:
                self._fail(WatcherTooSlow(behind, limit))
                raise self.error
            batch: list[Event] = []
            seq = self._next
            while seq < head and len(batch) < _MAX_BATCH:
                ev = cache.event(seq)
                seq += 1
                if ev.revision > self.after_revision and (not self._filter or ev.key.startswith(self._prefix)):
                    batch.append(ev)
            self._next = seq
            self.stall.since = None
            if batch:
                self.last_revision = batch[-1].revision
                return batch
            if seq >= head:
                return []

    async def wait(self) -> None:
        if self._next < 0 and self.error is None and not self.closed:
            try:
                await self._register()
            except StorageError:
                self.closed = True
                raise
            return
        await self._cache.changed.wait()

    def listen(self, listener: Callable[[], None] | None) -> None:
        super().listen(listener)
        if listener is None:
            self._cache.listening.discard(self)
        else:
            self._cache.listening.add(self)

    def _fail(self, error: StorageError) -> None:
        self.error = error
        self._cache.watchers.discard(self)

    async def aclose(self) -> None:
        self.closed = True
        self.listen(None)
        self._cache.watchers.discard(self)


class Cacher(DelegatingBackend):
    """A watch cache in front of ``inner`` (see the module docstring).

    ``watch_cache_size``: the ring's initial and smallest size per resource;
    ``max_watch_cache_size``: its largest; ``event_fresh_duration``: how long (seconds) the
    ring tries to keep events; ``watcher_queue_limit``: live events a watcher may lag
    behind before it is cut off; ``ready_timeout``: how long a watch waits for a
    (re)listing cache; ``catch_up_wait`` / ``fresh_timeout``: see "Freshness"."""

    def __init__(self, inner: Backend, *, watch_cache_size: int = DEFAULT_WATCH_CACHE_SIZE,
                 max_watch_cache_size: int = MAX_WATCH_CACHE_SIZE, event_fresh_duration: float = EVENT_FRESH_DURATION,
                 watcher_queue_limit: int = 10_000, ready_timeout: float = 10.0, catch_up_wait: float = 0.05,
                 fresh_timeout: float = 3.0):
        if watch_cache_size < 1:
            raise ValueError("watch_cache_size must be positive (do not wrap the backend to disable the cache)")
        super().__init__(inner)
        self.watch_cache_size = watch_cache_size
        self.max_watch_cache_size = max(max_watch_cache_size, watch_cache_size)
        self.event_fresh_duration = event_fresh_duration
        self.watcher_queue_limit = watcher_queue_limit
        self.ready_timeout = ready_timeout
        self.catch_up_wait = catch_up_wait
        self.fresh_timeout = fresh_timeout
        self.closed = False
        #: inner watches opened so far (one per resource, plus one per relist)
        self.inner_watches = 0
        self._caches: dict[str, _ResourceCache] = {}
        #: per resource prefix, the newest revision written through this cacher
        self._written: dict[str, int] = {}
        #: the fan-out of every cached resource to its listening watchers
        self.dispatcher = Dispatcher()

    def _cache(self, prefix: str, hint: int = 0) -> _ResourceCache | None:
        rp = resource_prefix(prefix)
        if rp is None:
            return None
        cache = self._caches.get(rp)
        if cache is None:
            cache = self._caches[rp] = _ResourceCache(self, rp, hint)
        return cache

    def stats(self) -> dict[str, dict[str, int]]:
        """Per cached resource: revision, buffered events, ring capacity, watchers, relists."""
        return {p: {"revision": c.revision, "events": len(c), "capacity": c.capacity,
                    "watchers": len(c.watchers), "relists": c.relists} for p, c in self._caches.items()}

    def cache_revision(self, prefix: str) -> int:
        """The revision the cache of ``prefix``'s resource has reached (0 if not cached)."""
        rp = resource_prefix(prefix)
        cache = self._caches.get(rp) if rp else None
        return cache.revision if cache is not None and cache.ready.is_set() else 0

    # -- lifecycle ----------------------------------------------------------------------
    async def close(self) -> None:
        self.closed = True
        caches = list(self._caches.values())
        for cache in caches:
            cache.close()
        for cache in caches:
            with contextlib.suppress(asyncio.CancelledError, StorageError):
                await cache.task
        await self.inner.close()

    # -- served from memory -------------------------------------------------------------
    async def range_not_older_than(self, prefix: str, min_revision: int) -> RangeResult:
        """Every key under ``prefix`` at a revision >= ``min_revision`` (0: any), ordered,
        without paging; from memory whenever the cache is fresh enough (see "Freshness").
        Raises FutureRevision when ``min_revision`` is not reached within ``fresh_timeout``."""
        cache = self._cache(prefix)
        if cache is None:
            return await self._read_through(prefix, min_revision)
        if not cache.ready.is_set():
            try:
                async with asyncio.timeout(self.fresh_timeout):
                    await cache.ready.wait()
            except TimeoutError:  # (re)listing: the storage answers instead
                return await self._read_through(prefix, min_revision)
        if cache.revision >= min_revision:
            return cache.snapshot(prefix)
        if await self._wait_for(cache, min_revision, self.catch_up_wait):
            return cache.snapshot(prefix)
        return await self._read_through(prefix, min_revision, cache)

    async def _wait_for(self, cache: _ResourceCache, revision: int, timeout: float) -> bool:
        """Wait (bounded) until the ready cache has applied ``revision``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while cache.revision < revision or not cache.ready.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await cache.changed.wait()
        return True

    async def _read_through(self, prefix: str, min_revision: int, cache: _ResourceCache | None = None) -> RangeResult:
        """The newest state from the inner backend, once storage has reached ``min_revision``
        (waiting up to ``fresh_timeout`` for it, or for the cache)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.fresh_timeout
        while True:
            current = await self.inner.current_revision()
            if current >= min_revision:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise FutureRevision(min_revision, current)
            if cache is not None:
                if await self._wait_for(cache, min_revision, min(remaining, 0.1)):
                    return cache.snapshot(prefix)
            else:
                await asyncio.sleep(min(remaining, 0.1))
        result = await self.inner.range(prefix)
        return RangeResult(result.kvs, result.revision, False, len(result.kvs))

    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        """See :meth:`Backend.watch`; served from the resource's cache (a :class:`CacheWatch`).
        Raises Compacted on the first iteration when ``after_revision`` is older than the
        cache window, WatcherTooSlow when the consumer falls too far behind, Compacted when
        the cache had to relist."""
        cache = self._cache(prefix, after_revision)
        if cache is None:
            return self.inner.watch(prefix, after_revision)
        return CacheWatch(cache, prefix, after_revision)

    # -- writes (delegated; their revisions remembered for read-your-writes) --------------
    async def create(self, key: str, value: bytes) -> KeyValue:
        kv = await self.inner.create(key, value)
        self._wrote(key, kv.mod_revision)
        return kv

    async def update(self, key: str, value: bytes, expected_mod_revision: int) -> KeyValue:
        kv = await self.inner.update(key, value, expected_mod_revision)
        self._wrote(key, kv.mod_revision)
        return kv

    async def delete(self, key: str, expected_mod_revision: int = 0) -> tuple[KeyValue, int]:
        prev, rev = await self.inner.delete(key, expected_mod_revision)
        self._wrote(key, rev)
        return prev, rev

    def _wrote(self, key: str, revision: int) -> None:
        rp = resource_prefix(key)
        if rp is not None and revision > self._written.get(rp, 0):
            self._written[rp] = revision

    def written_revision(self, prefix: str) -> int:
        """The newest revision this server wrote under ``prefix``'s resource: a read
        ``range_not_older_than`` it sees every write this server acknowledged there (the
        consistency an admission plugin's lister needs from its own server)."""
        rp = resource_prefix(prefix)
        return self._written.get(rp, 0) if rp is not None else 0

    async def range_with_own_writes(self, prefix: str) -> RangeResult:
        """Every key under ``prefix`` as a Go informer's lister has them, from memory, once
        the cache holds every write this server made there (:meth:`written_revision`)."""
        return await self.range_not_older_than(prefix, self.written_revision(prefix))

    # -- delegated ----------------------------------------------------------------------
