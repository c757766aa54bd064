"""The watch cache (:class:`extserver.storage.cacher.Cacher`) over every real backend.

The inner backend is wrapped in :class:`Spy`, which counts the storage watches and ranges
the cache opens and can break the storage watches it handed out, so the tests can show
what is served from memory and how the cache recovers. The storage contract's watch and
concurrency tests are imported at the end and run again with the Cacher in front.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

import pytest

from extserver.storage.cacher import Cacher, CacheWatch, resource_prefix
from extserver.storage.interface import (Backend, DelegatingBackend, Compacted, Event, FutureRevision, KeyValue, RangeResult,
                                         StorageError, Unavailable, WatcherTooSlow)
from tests.unit.conftest import BACKEND_KINDS, make_backend

BOUND = 60.0  # seconds: a hang guard, not a performance assertion


class Spy(DelegatingBackend):
    """Delegates to ``inner``; records watch/range calls; ``break_watches`` makes every open
    storage watch raise ``exc`` (as if etcd had compacted or become unreachable)."""

    def __init__(self, inner: Backend):
        super().__init__(inner)
        self.watch_calls: list[tuple[str, int]] = []
        self.range_calls: list[tuple[str, int]] = []
        self._broken = asyncio.Event()
        self._failure: StorageError = Unavailable("injected")

    def break_watches(self, exc: StorageError) -> None:
        self._failure = exc
        broken, self._broken = self._broken, asyncio.Event()
        broken.set()

    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        self.watch_calls.append((prefix, after_revision))
        return self._watch(prefix, after_revision)

    async def _watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        it = self.inner.watch(prefix, after_revision)
        broken = self._broken
        nxt: asyncio.Future | None = None
        try:
            while True:
                nxt = asyncio.ensure_future(anext(it))
                brk = asyncio.ensure_future(broken.wait())
                try:
                    await asyncio.wait({nxt, brk}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    brk.cancel()
                if broken.is_set():  # what the broken stream had in flight is lost with it
                    raise self._failure
                try:
                    batch = nxt.result()
                except StopAsyncIteration:
                    return
                yield batch
        finally:
            if nxt is not None and not nxt.done():
                nxt.cancel()
                await asyncio.gather(nxt, return_exceptions=True)
            await it.aclose()

    async def range(self, prefix: str, *, start_key: str | None = None, limit: int = 0,
                    revision: int = 0) -> RangeResult:
        self.range_calls.append((prefix, revision))
        return await self.inner.range(prefix, start_key=start_key, limit=limit, revision=revision)


async def make_cacher(kind: str, tmp_path: Path, **options) -> tuple[Cacher, Spy]:
    spy = Spy(await make_backend(kind, tmp_path))
    return Cacher(spy, **options), spy


@pytest.fixture(params=BACKEND_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def cached(kind: str, tmp_path: Path) -> AsyncIterator[tuple[Cacher, Spy]]:
    cacher, spy = await make_cacher(kind, tmp_path)
    try:
        yield cacher, spy
    finally:
        await cacher.close()


@pytest.fixture
def res(keyspace: str) -> str:
    """A resource prefix (``/<group>/<plural>/``) no other test uses."""
    assert resource_prefix(keyspace) == keyspace
    return keyspace


async def take(watch: AsyncIterator[list[Event]], n: int) -> list[Event]:
    """At least ``n`` events from ``watch`` (whole batches)."""
    out: list[Event] = []
    async with asyncio.timeout(BOUND):
        while len(out) < n:
            out.extend(await anext(watch))
    return out


async def write_mix(backend: Backend, res: str, n: int) -> list[tuple[int, str, str]]:
    """``n`` creates, updates and deletes over two namespaces; (revision, key, type) each."""
    state: dict[str, KeyValue] = {}
    out: list[tuple[int, str, str]] = []
    for i in range(n):
        key = f"{res}ns-{'ab'[i % 2]}/k{i % 7}"
        if key not in state:
            state[key] = await backend.create(key, b"%d" % i)
            out.append((state[key].mod_revision, key, "PUT"))
        elif i % 3 == 0:
            _, rev = await backend.delete(key, state.pop(key).mod_revision)
            out.append((rev, key, "DELETE"))
        else:
            state[key] = await backend.update(key, b"%d" % i, state[key].mod_revision)
            out.append((state[key].mod_revision, key, "PUT"))
    return out


async def started(watch: AsyncIterator[list[Event]]) -> asyncio.Task:
    """Start pulling the first batch (which registers a CacheWatch) and let it register."""
    task = asyncio.ensure_future(anext(watch))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if isinstance(watch, CacheWatch) and watch._next >= 0:
            break
    return task


def test_resource_prefix() -> None:
    assert resource_prefix("/wardle.example.com/flunders/") == "/wardle.example.com/flunders/"
    assert resource_prefix("/wardle.example.com/flunders/ns/") == "/wardle.example.com/flunders/"
    assert resource_prefix("/wardle.example.com/flunders/ns/name") == "/wardle.example.com/flunders/"
    assert resource_prefix("/wardle.example.com/") is None
    assert resource_prefix("/") is None


async def test_same_event_sequence_as_the_inner_watch(cached, res: str) -> None:
    cacher, spy = cached
    start = await cacher.current_revision()
    direct = spy.inner.watch(res, start)
    through_cache = cacher.watch(res, start)
    written = await write_mix(cacher, res, 60)
    expected = await take(direct, len(written))
    got = await take(through_cache, len(written))
    assert [(e.revision, e.key, e.type) for e in expected] == written
    assert got == expected  # same events: type, key, kv, prev_kv, revision
    await direct.aclose()
    await through_cache.aclose()


async def test_many_watchers_share_one_storage_watch(cached, res: str, keyspace: str) -> None:
    cacher, spy = cached
    start = await cacher.current_revision()
    prefixes = [res, res + "ns-a/", res + "ns-b/", res + "ns-a/k1"] * 10
    watches = [cacher.watch(p, start) for p in prefixes]
    written = await write_mix(cacher, res, 40)
    for prefix, watch in zip(prefixes, watches):
        want = [w for w in written if w[1].startswith(prefix)]
        got = await take(watch, len(want))
        assert [(e.revision, e.key, e.type) for e in got] == want
    assert [p for p, _ in spy.watch_calls] == [res]  # 40 watchers, one storage watch
    other = keyspace.rstrip("/") + "-other/"
    w2 = cacher.watch(other, start)
    kv = await cacher.create(other + "x", b"1")
    assert [e.kv for e in await take(w2, 1)] == [kv]
    assert [p for p, _ in spy.watch_calls] == [res, other]  # one per resource
    for w in watches + [w2]:
        await w.aclose()


async def test_resource_version_0_lists_are_served_from_memory(cached, res: str) -> None:
    cacher, spy = cached
    await write_mix(cacher, res, 30)
    first = await cacher.range_not_older_than(res, 0)  # starts the cache (one storage list)
    assert first.kvs == (await spy.inner.range(res, revision=first.revision)).kvs
    lists_before = len(spy.range_calls)
    last = (await write_mix(cacher, res + "more/", 10))[-1][0]
    async with asyncio.timeout(BOUND):
        while cacher.cache_revision(res) < last:
            await asyncio.sleep(0.01)
    for prefix in (res, res + "ns-a/", res + "more/"):
        got = await cacher.range_not_older_than(prefix, 0)
        want = await spy.inner.range(prefix)
        assert (got.kvs, got.revision) == (want.kvs, want.revision)
    assert len(spy.range_calls) == lists_before  # no storage read: from memory


async def test_reads_not_older_than_this_servers_writes_see_them(cached, res: str, keyspace: str) -> None:
    """``written_revision``: what a lister (an admission plugin's) must not be older than to
    see every write made through this cacher, per resource (another resource's writes do
    not make it wait)."""
    cacher, spy = cached
    other = keyspace.rstrip("/") + "-other/"
    await cacher.range_not_older_than(res, 0)  # the cache runs
    for i in range(20):
        kv = await cacher.create(res + f"ns/k{i}", b"")
        assert cacher.written_revision(res) == kv.mod_revision
        got = await cacher.range_not_older_than(res, cacher.written_revision(res))
        assert kv in got.kvs  # at once: the read waited for the cache to hold the write
        _, rev = await cacher.delete(res + f"ns/k{i}", kv.mod_revision)
        got = await cacher.range_not_older_than(res, cacher.written_revision(res))
        assert cacher.written_revision(res) == rev and all(k.key != kv.key for k in got.kvs)
    before = len(spy.range_calls)
    mark = cacher.written_revision(res)
    await cacher.create(other + "x", b"")  # another resource moves the revision on
    assert cacher.written_revision(res) == mark
    kv = await cacher.create(res + "ns/last", b"")
    assert kv in (await cacher.range_with_own_writes(res)).kvs  # what the registry's lister reads
    assert len(spy.range_calls) == before  # served from memory, no read-through


async def test_not_older_than_waits_for_the_cache(cached, res: str) -> None:
    cacher, spy = cached
    await cacher.create(res + "a", b"1")
    await cacher.range_not_older_than(res, 0)
    lists_before = len(spy.range_calls)
    current = await cacher.current_revision()
    waiting = asyncio.ensure_future(cacher.range_not_older_than(res, current + 1))
    await asyncio.sleep(0.2)
    assert not waiting.done()  # a revision the storage has not reached yet
    b = await spy.inner.create(res + "b", b"2")  # bypasses the Cacher: only the watch tells it
    async with asyncio.timeout(BOUND):
        got = await waiting
    assert got.revision >= b.mod_revision and [kv.key for kv in got.kvs] == [res + "a", res + "b"]
    assert len(spy.range_calls) == lists_before  # served from memory


async def test_not_older_than_a_future_revision_fails(kind: str, tmp_path: Path, res: str) -> None:
    cacher, _ = await make_cacher(kind, tmp_path, fresh_timeout=0.3)
    try:
        await cacher.range_not_older_than(res, 0)
        current = await cacher.current_revision()
        with pytest.raises(FutureRevision) as err:
            await cacher.range_not_older_than(res, current + 1000)
        assert err.value.requested == current + 1000
    finally:
        await cacher.close()


async def test_not_older_than_a_revision_of_another_resource(cached, res: str, keyspace: str) -> None:
    cacher, _ = cached
    a = await cacher.create(res + "a", b"1")
    await cacher.range_not_older_than(res, 0)
    elsewhere = await cacher.create(keyspace.rstrip("/") + "-other/x", b"1")  # this resource is quiet
    async with asyncio.timeout(BOUND):
        got = await cacher.range_not_older_than(res, elsewhere.mod_revision)
    assert got.kvs == [a] and got.revision >= elsewhere.mod_revision


async def test_watch_older_than_the_window_is_compacted(kind: str, tmp_path: Path, res: str) -> None:
    cacher, _ = await make_cacher(kind, tmp_path, watch_cache_size=5, max_watch_cache_size=5)
    try:
        start = await cacher.current_revision()
        await cacher.range_not_older_than(res, 0)  # the window starts here
        written = await write_mix(cacher, res, 20)
        async with asyncio.timeout(BOUND):
            while cacher.cache_revision(res) < written[-1][0]:
                await asyncio.sleep(0.01)
        assert cacher.stats()[res]["events"] == 5  # bounded
        too_old = cacher.watch(res, start)
        with pytest.raises(Compacted) as err:
            await anext(too_old)
        assert err.value.requested == start and err.value.compacted == written[-6][0]
        recent = cacher.watch(res, written[-6][0])  # the oldest revision still served
        got = await take(recent, 5)
        assert [(e.revision, e.key, e.type) for e in got] == written[-5:]
        await recent.aclose()
    finally:
        await cacher.close()


async def test_window_grows_while_events_are_fresh_up_to_the_bound(kind: str, tmp_path: Path, res: str) -> None:
    cacher, _ = await make_cacher(kind, tmp_path, watch_cache_size=4, max_watch_cache_size=32)
    try:
        await cacher.range_not_older_than(res, 0)
        start = await cacher.current_revision()
        written = await write_mix(cacher, res, 30)
        watch = cacher.watch(res, start)  # 30 events after a burst: all still buffered
        assert [(e.revision, e.key, e.type) for e in await take(watch, 30)] == written
        await watch.aclose()
        more = await write_mix(cacher, res + "z/", 40)
        async with asyncio.timeout(BOUND):
            while cacher.cache_revision(res) < more[-1][0]:
                await asyncio.sleep(0.01)
        assert cacher.stats()[res]["capacity"] == 32 and cacher.stats()[res]["events"] == 32
    finally:
        await cacher.close()


async def test_slow_watcher_is_cut_off(kind: str, tmp_path: Path, res: str) -> None:
    cacher, _ = await make_cacher(kind, tmp_path, watcher_queue_limit=10)
    try:
        start = await cacher.current_revision()
        slow, fast = cacher.watch(res, start), cacher.watch(res, start)
        slow_first, fast_first = await started(slow), await started(fast)
        await cacher.create(res + "first", b"")
        async with asyncio.timeout(BOUND):
            assert len(await slow_first) == len(await fast_first) == 1
        fast_seen: list[Event] = []
        for i in range(15):  # the slow watcher does not read these
            await cacher.create(res + f"k{i}", b"")
            fast_seen.extend(await take(fast, 1))
        assert len(fast_seen) == 15
        with pytest.raises(WatcherTooSlow) as err:
            async with asyncio.timeout(BOUND):
                await anext(slow)
        assert err.value.limit == 10 and err.value.pending == 15
        await cacher.create(res + "after", b"")
        assert [e.key for e in await take(fast, 1)] == [res + "after"]  # others unaffected
        assert cacher.stats()[res]["watchers"] == 1
        await fast.aclose()
    finally:
        await cacher.close()


async def test_watcher_behind_the_ring_is_cut_off(kind: str, tmp_path: Path, res: str) -> None:
    cacher, _ = await make_cacher(kind, tmp_path, watch_cache_size=4, max_watch_cache_size=4)
    try:
        start = await cacher.current_revision()
        slow = cacher.watch(res, start)
        first = await started(slow)
        await cacher.create(res + "first", b"")
        async with asyncio.timeout(BOUND):
            await first
        last = (await write_mix(cacher, res, 10))[-1][0]
        async with asyncio.timeout(BOUND):
            while cacher.cache_revision(res) < last:
                await asyncio.sleep(0.01)
        with pytest.raises(WatcherTooSlow):
            await anext(slow)
    finally:
        await cacher.close()


@pytest.mark.parametrize("failure", [Unavailable("etcd gone"), Compacted(5, 10)], ids=["unavailable", "compacted"])
async def test_recovers_when_the_storage_watch_fails(cached, res: str, failure: StorageError) -> None:
    cacher, spy = cached
    a = await cacher.create(res + "a", b"1")
    watch = cacher.watch(res, a.mod_revision)
    pending = await started(watch)
    b = await cacher.create(res + "b", b"1")
    async with asyncio.timeout(BOUND):
        assert [e.kv for e in await pending] == [b]
    spy.break_watches(failure)
    c = await spy.inner.create(res + "c", b"1")  # written while the cache is not watching
    with pytest.raises(Compacted):  # the API sends 410; the client relists
        async with asyncio.timeout(BOUND):
            await anext(watch)
    async with asyncio.timeout(BOUND):
        while len(spy.watch_calls) < 2 or cacher.cache_revision(res) < c.mod_revision:
            await asyncio.sleep(0.01)
    relisted = await cacher.range_not_older_than(res, 0)
    assert [kv.key for kv in relisted.kvs] == [res + "a", res + "b", res + "c"]
    resumed = cacher.watch(res, relisted.revision)
    d = await cacher.create(res + "d", b"1")
    assert [e.kv for e in await take(resumed, 1)] == [d]
    assert cacher.stats()[res]["relists"] == 1
    await resumed.aclose()


async def test_watch_waits_for_a_relisting_cache_then_fails_honestly(kind: str, tmp_path: Path, res: str) -> None:
    cacher, spy = await make_cacher(kind, tmp_path, ready_timeout=0.5)
    try:
        await cacher.range_not_older_than(res, 0)
        failing = Unavailable("etcd gone")

        async def unavailable(*args, **kwargs):
            raise failing
        spy.inner_range, spy.range = spy.range, unavailable  # the relist fails too
        spy.break_watches(failing)
        async with asyncio.timeout(BOUND):
            while cacher.stats()[res]["relists"] < 1:
                await asyncio.sleep(0.01)
        watch = cacher.watch(res, await cacher.current_revision())
        with pytest.raises(Unavailable):
            await anext(watch)
        spy.range = spy.inner_range  # storage is back: the cache relists and serves again
        async with asyncio.timeout(BOUND):
            while cacher.cache_revision(res) == 0:
                await asyncio.sleep(0.01)
        watch = cacher.watch(res, await cacher.current_revision())
        pending = await started(watch)
        kv = await cacher.create(res + "x", b"")
        async with asyncio.timeout(BOUND):
            assert [e.kv for e in await pending] == [kv]
    finally:
        await cacher.close()


async def test_progress_revision_for_bookmarks(cached, res: str) -> None:
    cacher, _ = cached
    start = await cacher.current_revision()
    watch = cacher.watch(res, start)
    assert isinstance(watch, CacheWatch)
    pending = await started(watch)
    a = await cacher.create(res + "a", b"")
    b = await cacher.create(res + "b", b"")
    async with asyncio.timeout(BOUND):
        while cacher.cache_revision(res) < b.mod_revision:
            await asyncio.sleep(0.01)
    first = await pending
    # b is buffered but not yet handed out: progress must not claim it
    assert watch.progress_revision == first[-1].revision
    if first[-1].revision < b.mod_revision:
        await take(watch, 1)
    assert watch.progress_revision == b.mod_revision >= a.mod_revision
    await watch.aclose()


async def test_close_ends_every_watch(kind: str, tmp_path: Path, res: str) -> None:
    cacher, _ = await make_cacher(kind, tmp_path)
    watch = cacher.watch(res, await cacher.current_revision())
    pending = await started(watch)
    await cacher.close()
    with pytest.raises(StopAsyncIteration):
        async with asyncio.timeout(BOUND):
            await pending


# -- the storage contract's watch and concurrency tests, with the Cacher in front ------------

@pytest.fixture
async def backend(kind: str, tmp_path: Path) -> AsyncIterator[Backend]:
    cacher, _ = await make_cacher(kind, tmp_path)
    try:
        yield cacher
    finally:
        await cacher.close()


from tests.unit.test_storage_contract import (  # noqa: E402,F401  (collected again on the Cacher)
    test_compaction_forgets_old_revisions_but_keeps_latest_values,
    test_concurrent_cas_increments_lose_no_update,
    test_watch_ends_when_the_backend_closes,
    test_watch_only_sees_keys_under_its_prefix,
    test_watch_replays_history_then_streams_live_events,
    test_watch_resumed_from_last_seen_revision_sees_every_event_once,
)

