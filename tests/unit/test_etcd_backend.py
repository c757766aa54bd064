"""etcd-specific behaviour of :class:`Etcd3Backend` against real etcd processes: TLS, the
key prefix, compaction, failover, lost quorum, and watches and writes that survive member
restarts and a ``kill -9`` of the leader. (The shared storage contract runs in
``test_storage_contract.py``.)"""
from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest

from extserver.storage.etcd3 import COMPACT_REV_KEY, Etcd3Backend
from extserver.storage.interface import Compacted, Event, KeyValue, RevisionMismatch, StorageError, Unavailable
from tests.etcd_cluster import EtcdCluster, etcd_backend

BOUND = 60.0  # seconds: a hang guard, not a performance assertion


@pytest.fixture
def cluster3(tmp_path: Path) -> Iterator[EtcdCluster]:
    with EtcdCluster(tmp_path / "etcd3", size=3) as cluster:
        yield cluster


@contextlib.asynccontextmanager
async def backend_on(endpoints: list[str], **kwargs) -> AsyncIterator[Etcd3Backend]:
    kwargs.setdefault("compaction_interval", 0)
    backend = Etcd3Backend(endpoints, **kwargs)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.close()


async def wait_until(predicate, what: str, timeout: float = BOUND) -> None:
    """Poll an async predicate (bounded in time)."""
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.1)


# -- connection ----------------------------------------------------------------------

async def test_tls_connection_with_client_certificates(tmp_path: Path) -> None:
    backend = await etcd_backend(tmp_path / "etcd", tls=True)
    await backend.start()
    try:
        assert backend.cluster.client_urls[0].startswith("https://")
        kv = await backend.create("/flunders/ns/a", b"over tls")
        assert (await backend.get("/flunders/ns/a"))[0] == kv
        assert await backend.healthy() == (True, "")

        tls = backend.cluster.tls
        assert tls is not None
        # etcd demands a client certificate: the CA alone is not enough
        async with backend_on(backend.cluster.client_urls, ca_file=str(tls.ca_file),
                              dial_timeout=1, health_timeout=2) as no_client_cert:
            ok, reason = await no_client_cert.healthy()
            assert not ok and reason
        # and a plaintext client cannot talk to it
        async with backend_on(backend.cluster.endpoints, dial_timeout=1, health_timeout=2) as plaintext:
            assert (await plaintext.healthy())[0] is False
    finally:
        await backend.close()


async def test_keys_are_stored_under_the_prefix(tmp_path: Path) -> None:
    backend = await etcd_backend(tmp_path / "etcd", prefix="/registry/wardle.example.com")
    await backend.start()
    try:
        start = await backend.current_revision()
        await backend.create("/flunders/ns/a", b"A")
        await backend.create("/fischers/b", b"B")
        for outside in ("/registry/other.example.com/flunders/ns/x", "/registry/wardle.example.com.evil/x"):
            await asyncio.to_thread(backend.cluster.etcdctl, "put", outside, "not ours")
        last = await backend.create("/flunders/ns/c", b"C")

        raw = await asyncio.to_thread(backend.cluster.get_raw, "/registry/wardle.example.com/", prefix=True)
        assert raw == {"/registry/wardle.example.com/flunders/ns/a": b"A",
                       "/registry/wardle.example.com/fischers/b": b"B",
                       "/registry/wardle.example.com/flunders/ns/c": b"C"}

        everything = await backend.range("/")
        assert [kv.key for kv in everything.kvs] == ["/fischers/b", "/flunders/ns/a", "/flunders/ns/c"]
        watch = backend.watch("/", start)
        seen: list[Event] = []
        async with asyncio.timeout(BOUND):
            while not seen or seen[-1].revision < last.mod_revision:
                seen.extend(await anext(watch))
        await watch.aclose()
        assert [e.key for e in seen] == ["/flunders/ns/a", "/fischers/b", "/flunders/ns/c"]
    finally:
        await backend.close()


async def test_concurrent_gets_share_one_read_txn_and_each_sees_what_it_should(tmp_path: Path) -> None:
    """Gets asked in one turn of the event loop are one read-only Txn (one gRPC call), and
    each answers as its own Range would: its key's newest value (or none), the revision."""
    backend = await etcd_backend(tmp_path / "etcd")
    await backend.start()
    try:
        kvs = [await backend.create(f"/g/k{i:03d}", b"v%d" % i) for i in range(200)]
        kvs[7] = await backend.update("/g/k007", b"new", kvs[7].mod_revision)
        calls = {"range": 0, "txn": 0}
        real_range, real_txn = backend.client.range, backend.client.read_txn

        def count(name, real):
            def call(*a, **kw):
                calls[name] += 1
                return real(*a, **kw)
            return call

        backend.client.range, backend.client.read_txn = count("range", real_range), count("txn", real_txn)
        keys = [f"/g/k{i:03d}" for i in range(200)] + ["/g/missing"]
        async with asyncio.timeout(BOUND):
            got = await asyncio.gather(*(backend.get(k) for k in keys))
        assert calls == {"range": 0, "txn": 2}  # 201 gets: Txns of at most 128
        current = await backend.current_revision()
        for kv, (found, rev) in zip(kvs, got):
            assert found == kv and rev == current
        assert got[-1] == (None, current)
        before = dict(calls)
        async with asyncio.timeout(BOUND):  # alone: a plain Range
            assert (await backend.get("/g/k001"))[0] == kvs[1]
        assert calls == {"range": before["range"] + 1, "txn": 2}
        written = await backend.update("/g/k001", b"later", kvs[1].mod_revision)
        async with asyncio.timeout(BOUND):  # a write acknowledged before the gets is seen by every one
            after = await asyncio.gather(*(backend.get("/g/k001") for _ in range(5)))
        assert all(found == written for found, _ in after)
    finally:
        await backend.close()


# -- compaction -----------------------------------------------------------------------

async def test_compaction_by_anyone_is_reported_with_etcds_compact_revision(tmp_path: Path) -> None:
    backend = await etcd_backend(tmp_path / "etcd")
    await backend.start()
    try:
        assert await backend.compacted_revision() == 0
        first = await backend.create("/p/a", b"1")
        kv = first
        for i in range(10):
            kv = await backend.update("/p/a", b"%d" % i, kv.mod_revision)
        page = await backend.range("/p/", limit=1)  # a list whose continue would read at this revision
        for i in range(5):
            kv = await backend.update("/p/a", b"x%d" % i, kv.mod_revision)
        target = kv.mod_revision - 2
        # compacted by another client (another replica, or an operator with etcdctl)
        await asyncio.to_thread(backend.cluster.etcdctl, "compact", str(target))

        assert await backend.compacted_revision() == target
        with pytest.raises(Compacted) as too_old:
            await backend.range("/p/", start_key="/p/a\x00", limit=1, revision=page.revision)
        assert (too_old.value.requested, too_old.value.compacted) == (page.revision, target)
        with pytest.raises(Compacted):
            await backend.get("/p/a", first.mod_revision)

        watch = backend.watch("/p/", first.mod_revision)
        with pytest.raises(Compacted) as expired:
            async with asyncio.timeout(BOUND):
                await anext(watch)
        assert (expired.value.requested, expired.value.compacted) == (first.mod_revision, target)
    finally:
        await backend.close()


async def test_compactor_rounds_are_shared_between_replicas(tmp_path: Path) -> None:
    replica1 = await etcd_backend(tmp_path / "etcd")
    await replica1.start()
    try:
        async with backend_on(replica1.cluster.endpoints) as replica2:
            # round 0 bootstraps: claims the round, compacts nothing
            round1, seen = await replica1._compact_step(0, 0)
            assert round1 == 1 and await replica1.compacted_revision() == 0
            kv = await replica1.create("/c/a", b"0")
            for i in range(5):
                kv = await replica1.update("/c/a", b"%d" % i, kv.mod_revision)

            # the other replica is one round behind: its claim fails and it adopts the round
            round_b, _ = await replica2._compact_step(0, 0)
            assert round_b == 1

            # next round: compacts to the revision seen one interval earlier
            round2, _ = await replica1._compact_step(round1, seen)
            assert round2 == 2
            assert await replica1.compacted_revision() == seen
            raw = await asyncio.to_thread(replica1.cluster.get_raw, COMPACT_REV_KEY.decode())
            assert raw == {COMPACT_REV_KEY.decode(): str(seen).encode()}

            # a replica that claims a round already taken does not compact again
            before = await replica1.compacted_revision()
            assert (await replica2._compact_step(round_b, kv.mod_revision))[0] == 2
            assert await replica1.compacted_revision() == before
    finally:
        await replica1.close()


async def test_periodic_compaction_runs(tmp_path: Path) -> None:
    backend = await etcd_backend(tmp_path / "etcd", compaction_interval=0.2)
    await backend.start()
    try:
        kv = await backend.create("/c/a", b"0")

        async def compacted() -> bool:
            nonlocal kv
            kv = await backend.update("/c/a", b"x", kv.mod_revision)
            return await backend.compacted_revision() > 0

        await wait_until(compacted, "a periodic compaction")
        with pytest.raises(Compacted):
            await backend.range("/c/", revision=1)
    finally:
        await backend.close()


# -- failures --------------------------------------------------------------------------

async def test_fails_over_to_the_next_endpoint(cluster3: EtcdCluster) -> None:
    await asyncio.to_thread(cluster3.stop_member, 0)
    async with backend_on(cluster3.client_urls) as backend:  # the first endpoint is down
        kv = await backend.create("/f/a", b"1")
        kv = await backend.update("/f/a", b"2", kv.mod_revision)
        assert (await backend.get("/f/a"))[0] == kv
        assert (await backend.range("/f/")).kvs == [kv]
        watch = backend.watch("/f/", kv.mod_revision)
        await asyncio.to_thread(cluster3.start_member, 0)
        await asyncio.to_thread(cluster3.wait_healthy)
        await asyncio.to_thread(cluster3.stop_member, 1)  # now the second endpoint goes away
        deleted, rev = await backend.delete("/f/a", kv.mod_revision)
        assert deleted == kv
        async with asyncio.timeout(BOUND):
            events = await anext(watch)
        assert [(e.type, e.revision) for e in events] == [("DELETE", rev)]
        await watch.aclose()


async def test_healthy_is_false_while_quorum_is_lost(cluster3: EtcdCluster) -> None:
    async with backend_on(cluster3.client_urls, request_timeout=3, health_timeout=2) as backend:
        await backend.create("/q/a", b"1")
        assert await backend.healthy() == (True, "")

        await asyncio.to_thread(cluster3.stop_member, 1)
        await asyncio.to_thread(cluster3.stop_member, 2)
        ok, reason = await backend.healthy()
        assert ok is False and reason
        with pytest.raises(Unavailable):
            await backend.create("/q/b", b"2")
        with pytest.raises(Unavailable):
            await backend.range("/q/")

        await asyncio.to_thread(cluster3.start_member, 1)
        await asyncio.to_thread(cluster3.start_member, 2)

        async def healthy() -> bool:
            return (await backend.healthy())[0]

        await wait_until(healthy, "quorum back")
        assert [kv.key for kv in (await backend.range("/q/")).kvs] == ["/q/a"]
        await backend.create("/q/b", b"2")


async def test_a_watch_that_cannot_reconnect_ends_with_unavailable(tmp_path: Path) -> None:
    backend = await etcd_backend(tmp_path / "etcd", watch_retry_timeout=1.0)
    await backend.start()
    try:
        kv = await backend.create("/w/a", b"1")
        watch = backend.watch("/w/", kv.mod_revision - 1)
        assert len(await anext(watch)) == 1
        await asyncio.to_thread(backend.cluster.stop)
        with pytest.raises(Unavailable):
            async with asyncio.timeout(BOUND):
                await anext(watch)
    finally:
        await backend.close()


async def test_a_watch_resuming_onto_a_compacted_revision_raises_compacted(cluster3: EtcdCluster) -> None:
    urls = cluster3.client_urls
    async with backend_on(urls) as watcher, backend_on(urls[1:]) as writer:
        first = await writer.create("/w/a", b"0")
        watch = watcher.watch("/w/", first.mod_revision - 1)
        async with asyncio.timeout(BOUND):
            assert [e.revision for e in await anext(watch)] == [first.mod_revision]
        # the watch stream is on member 0; it dies, history moves on and is compacted
        await asyncio.to_thread(cluster3.kill_member, 0)
        await asyncio.to_thread(cluster3.wait_healthy)  # a new leader, if member 0 led
        kv = first
        for i in range(5):
            kv = await writer.update("/w/a", b"%d" % i, kv.mod_revision)
        await writer.compact(kv.mod_revision)
        with pytest.raises(Compacted) as expired:
            async with asyncio.timeout(BOUND):
                await anext(watch)
        assert (expired.value.requested, expired.value.compacted) == (first.mod_revision, kv.mod_revision)


async def test_writes_and_watch_survive_member_restarts_and_leader_kill(cluster3: EtcdCluster) -> None:
    """Restart each member in turn, then ``kill -9`` the leader, while writers run
    read-modify-write loops: no acknowledged write is lost, and the watch delivers every
    revision exactly once, in order."""
    async with backend_on(cluster3.client_urls, request_timeout=5) as backend:
        start = await backend.current_revision()
        acknowledged: list[tuple[int, str, bytes]] = []
        ambiguous = 0
        stop = asyncio.Event()

        async def writer(n: int) -> None:
            nonlocal ambiguous
            rng = random.Random(n)
            keys = [f"/chaos/w{n}/k{i}" for i in range(5)]
            state: dict[str, KeyValue | None] = {k: None for k in keys}
            for _ in range(100_000):
                if stop.is_set():
                    return
                key = rng.choice(keys)
                try:
                    current = state[key]
                    if current is None:
                        kv = await backend.create(key, b"1")
                    else:
                        kv = await backend.update(key, b"%d" % (int(current.value) + 1), current.mod_revision)
                    state[key] = kv
                    acknowledged.append((kv.mod_revision, key, kv.value))
                except RevisionMismatch as conflict:  # an ambiguous earlier write did apply
                    state[key] = conflict.current
                except StorageError:  # Unavailable (maybe applied) or KeyExists after one
                    ambiguous += 1
                    with contextlib.suppress(StorageError):
                        state[key] = (await backend.get(key))[0]
                    await asyncio.sleep(0.05)

        seen: list[Event] = []

        async def watcher() -> None:
            async for batch in backend.watch("/chaos/", start):
                seen.extend(batch)

        watching = asyncio.create_task(watcher())
        writers = [asyncio.create_task(writer(n)) for n in range(4)]
        try:
            async def progress(n: int) -> None:
                goal = len(acknowledged) + n
                await wait_until(lambda: asyncio.sleep(0, len(acknowledged) >= goal), "writes to progress")

            await progress(50)
            for i in range(3):
                await asyncio.to_thread(cluster3.restart_member, i)
                await progress(50)
            leader = await asyncio.to_thread(cluster3.leader_index)
            await asyncio.to_thread(cluster3.kill_member, leader)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(cluster3.start_member, leader)
            await asyncio.to_thread(cluster3.wait_healthy)
            await progress(50)
        finally:
            stop.set()
            await asyncio.gather(*writers)

        final = await backend.range("/chaos/")
        await wait_until(lambda: asyncio.sleep(0, bool(seen) and seen[-1].revision >= final.revision),
                         "the watch to catch up")
        assert not watching.done(), watching
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)

    # every revision since the start exactly once, in order (nothing else writes to this etcd)
    assert [e.revision for e in seen] == list(range(start + 1, final.revision + 1))
    by_revision = {e.revision: e for e in seen}
    for rev, key, value in acknowledged:
        event = by_revision[rev]
        assert (event.type, event.key, event.kv.value) == ("PUT", key, value)
    last_per_key = {e.key: e.kv for e in seen}
    assert {kv.key: kv for kv in final.kvs} == last_per_key
    assert len(acknowledged) >= 250
