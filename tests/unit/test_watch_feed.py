"""Watches taken by push (:class:`~extserver.storage.interface.WatchFeed`) and the fan-out
that signals them (:class:`~extserver.storage.dispatch.Dispatcher`), over every real
backend, the watch cache in front of each, and the encryption wrapper.

A listener is called by the storage as writes land, with no task awaiting the watch; it
takes the events with ``poll``. Events that arrive while it does not poll wait in the feed
and come out together."""
from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import AsyncIterator

import pytest

from extserver.storage.cacher import Cacher
from extserver.storage.dispatch import Dispatcher
from extserver.storage.encryption import EncryptingBackend, load_encryption_config_per_resource
from extserver.storage.interface import Backend, Event, WatchFeed
from tests.unit.conftest import make_backend

BOUND = 30.0  # seconds: a hang guard, not a performance assertion
RES = "/wardle.example.com/flunders/"

FEED_KINDS = ["embedded", "etcd3+cache", "embedded+cache", "embedded+encryption"]


@pytest.fixture(params=FEED_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    base, _, wrapper = request.param.partition("+")
    backend = await make_backend(base, tmp_path)
    if wrapper == "encryption":
        cfg = tmp_path / "enc.yaml"
        key = base64.b64encode(b"k" * 32).decode()
        cfg.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
                       "- resources: [flunders.wardle.example.com]\n  providers:\n"
                       f"  - aesgcm:\n      keys:\n      - name: k1\n        secret: {key}\n")
        backend = EncryptingBackend(backend, load_encryption_config_per_resource(str(cfg)))
    elif wrapper == "cache":
        backend = Cacher(backend)
    try:
        yield backend
    finally:
        await backend.close()


async def started_feed(store: Backend, after: int) -> WatchFeed:
    """A watch of RES as a feed, registered (as the serving layer has it before listening)."""
    feed = store.watch(RES, after)
    assert isinstance(feed, WatchFeed)
    async with asyncio.timeout(BOUND):
        while True:
            assert feed.poll() == []
            if feed.started:
                return feed
            await feed.wait()


async def until(cond, what: str) -> None:
    async with asyncio.timeout(BOUND):
        while not cond():
            await asyncio.sleep(0.005)


async def test_a_listener_is_called_as_writes_land_and_polls_them_in_order(store: Backend) -> None:
    start = await store.current_revision()
    feed = await started_feed(store, start)
    got: list[Event] = []

    def on_events() -> None:
        while batch := feed.poll():
            got.extend(batch)

    feed.listen(on_events)  # nothing awaits the feed from here on
    a = await store.create(RES + "ns/a", b"1")
    b = await store.update(RES + "ns/a", b"2", a.mod_revision)
    await store.create("/wardle.example.com/fischers/x", b"other resource")
    _, deleted = await store.delete(RES + "ns/a", b.mod_revision)
    await until(lambda: len(got) == 3, "three events")
    assert [(e.type, e.revision) for e in got] == [("PUT", a.mod_revision), ("PUT", b.mod_revision),
                                                   ("DELETE", deleted)]
    assert got[1].kv.value == b"2"  # decrypted where the store encrypts
    feed.listen(None)
    await store.create(RES + "ns/b", b"")
    await asyncio.sleep(0.1)
    assert len(got) == 3  # no listener: nothing taken
    assert [e.key for e in feed.poll()] == [RES + "ns/b"]
    await feed.aclose()


async def test_events_a_listener_leaves_come_out_together(store: Backend) -> None:
    start = await store.current_revision()
    feed = await started_feed(store, start)
    signals = [0]
    feed.listen(lambda: signals.__setitem__(0, signals[0] + 1))  # signalled, never polls
    revs = [(await store.create(RES + f"ns/k{i}", b"")).mod_revision for i in range(5)]
    await until(lambda: signals[0] >= 1, "a signal")
    await asyncio.sleep(0.1)
    batch = feed.poll()
    assert [e.revision for e in batch] == revs  # one poll, every waiting event, in order
    assert feed.poll() == []
    await feed.aclose()
    assert feed.poll() is None


async def test_a_feed_iterates_as_any_watch(store: Backend) -> None:
    start = await store.current_revision()
    first = await store.create(RES + "ns/a", b"")
    feed = store.watch(RES, start)
    async with asyncio.timeout(BOUND):
        assert [e.revision for e in await anext(feed)] == [first.mod_revision]  # replayed
        nxt = asyncio.ensure_future(anext(feed))
        second = await store.create(RES + "ns/b", b"")
        assert [e.revision for e in await nxt] == [second.mod_revision]
    await feed.aclose()


class FakeFeed(WatchFeed):
    started = True

    def poll(self):  # pragma: no cover - the dispatcher only signals
        return []

    async def wait(self) -> None:  # pragma: no cover
        return None

    async def aclose(self) -> None:  # pragma: no cover
        return None


async def test_the_dispatcher_signals_each_waiting_feed_once_in_order_and_yields_between_slices() -> None:
    calls: list[int] = []
    feeds = [FakeFeed() for _ in range(300)]
    for i, f in enumerate(feeds):
        f.listen(lambda i=i: calls.append(i))
    silent = FakeFeed()  # no listener: never queued
    d = Dispatcher(slice_seconds=0.0)  # every slice ends at the first look at the clock
    d.signal(feeds + [silent])
    d.signal(feeds[:10])  # already waiting: not queued again, nor moved
    interleaved: list[int] = []
    asyncio.get_running_loop().call_soon(lambda: interleaved.append(len(calls)))
    await until(lambda: len(calls) == 300, "every feed")
    assert calls == list(range(300))
    assert d.slices >= 300 // 32 and 0 < interleaved[0] < 300  # the loop ran other work mid fan-out
    d.signal(feeds[:1])
    await until(lambda: len(calls) == 301, "signalled again once its turn was over")
    assert calls[-1] == 0
