"""Behaviour specific to the embedded backend: durability across ``kill -9`` and restarts,
group commit, fail-stop on disk errors, slow watchers and automatic compaction."""
from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import sys
import threading
from pathlib import Path

import pytest

from extserver.storage.embedded import EmbeddedBackend
from extserver.storage.interface import (
    Compacted,
    KeyExists,
    KeyValue,
    Unavailable,
    WatcherTooSlow,
)

BOUND = 60.0  # seconds: a hang guard, not a performance assertion

# Creates keys from 8 concurrent tasks as fast as it can and prints "<key> <revision>"
# for each create once it is acknowledged. Stops by itself after 200k writes or 120 s.
CHILD = r"""
import asyncio, sys, time
from extserver.storage.embedded import EmbeddedBackend

async def main():
    backend = EmbeddedBackend(sys.argv[1], sync=sys.argv[2], compaction_interval=0)
    await backend.start()
    print("ready", await backend.current_revision(), flush=True)
    deadline = time.monotonic() + 120

    async def creator(worker):
        for i in range(25_000):
            if time.monotonic() > deadline:
                return
            kv = await backend.create(f"/k/{worker}/{i:06d}", f"value-{worker}-{i}".encode())
            sys.stdout.write(f"{kv.key} {kv.mod_revision}\n")
            sys.stdout.flush()

    await asyncio.gather(*(creator(w) for w in range(8)))

asyncio.run(main())
"""


@pytest.mark.parametrize("sync", ["full", "normal"])
async def test_acknowledged_writes_survive_kill_9(tmp_path: Path, sync: str) -> None:
    data = tmp_path / "store"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(data), sync,
        stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parents[2])
    lines: list[bytes] = []
    try:
        async with asyncio.timeout(BOUND):
            assert (await proc.stdout.readline()).startswith(b"ready")
            while len(lines) < 500:  # let it get well into its stride, then kill it mid-write
                line = await proc.stdout.readline()
                assert line, "the writer process exited early"
                lines.append(line)
        os.kill(proc.pid, signal.SIGKILL)
        async with asyncio.timeout(BOUND):
            rest = await proc.stdout.read()  # what it printed before dying was acknowledged too
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    acknowledged: dict[str, int] = {}
    complete = b"".join(lines) + rest
    for line in complete.decode().split("\n")[:-1]:  # the last piece may be a torn line
        key, rev = line.split()
        acknowledged[key] = int(rev)
    assert len(acknowledged) >= 500

    reopened = EmbeddedBackend(data, sync=sync, compaction_interval=0)
    await reopened.start()
    try:
        stored = {kv.key: kv for kv in (await reopened.range("/k/")).kvs}
        for key, rev in acknowledged.items():
            _, worker, index = key.split("/")[1:]
            assert stored[key].value == f"value-{worker}-{int(index)}".encode()
            assert stored[key].mod_revision == rev
        # every write is one revision starting at 2, so the log has no holes
        current = await reopened.current_revision()
        assert sorted(kv.mod_revision for kv in stored.values()) == list(range(2, current + 1))
        after = await reopened.create("/after-restart", b"x")
        assert after.mod_revision == current + 1
    finally:
        await reopened.close()


async def test_acknowledged_writes_are_in_the_database_file(tmp_path: Path) -> None:
    """An acknowledged write is a committed row that another connection can read."""
    backend = EmbeddedBackend(tmp_path, sync="full", compaction_interval=0)
    await backend.start()
    try:
        kv = await backend.create("/a", b"1")
        conn = sqlite3.connect(tmp_path / "store.db")
        try:
            rows = conn.execute("SELECT rev, key, value, deleted FROM log").fetchall()
        finally:
            conn.close()
        assert rows == [(kv.mod_revision, "/a", b"1", 0)]
    finally:
        await backend.close()


async def test_restart_preserves_revisions_history_and_compaction(tmp_path: Path) -> None:
    first = EmbeddedBackend(tmp_path, compaction_interval=0)
    await first.start()
    assert await first.current_revision() == 1  # etcd convention: an empty store is at 1
    a = await first.create("/r/a", b"a1")
    assert a.mod_revision == 2
    b = await first.create("/r/b", b"b1")
    a2 = await first.update("/r/a", b"a2", a.mod_revision)
    _, deleted_at = await first.delete("/r/b")
    a3 = await first.update("/r/a", b"a3", a2.mod_revision)
    await first.compact(a2.mod_revision)
    c = await first.create("/r/c", b"c1")
    await first.close()

    second = EmbeddedBackend(tmp_path, compaction_interval=0)
    await second.start()
    try:
        assert await second.current_revision() == c.mod_revision
        assert await second.compacted_revision() == a2.mod_revision
        with pytest.raises(Compacted):
            await second.get("/r/a", b.mod_revision)
        assert (await second.range("/r/", revision=a2.mod_revision)).kvs == [a2, b]
        assert (await second.range("/r/")).kvs == [a3, c]
        watch = second.watch("/r/", a2.mod_revision)
        async with asyncio.timeout(BOUND):
            events = await anext(watch)
        assert [(e.type, e.revision) for e in events] == [
            ("DELETE", deleted_at), ("PUT", a3.mod_revision), ("PUT", c.mod_revision)]
        assert events[0].prev_kv == b and events[1].prev_kv == a2
        await watch.aclose()
        d = await second.create("/r/d", b"d")
        assert d.mod_revision == c.mod_revision + 1
    finally:
        await second.close()


async def test_compacting_everything_keeps_the_current_revision(tmp_path: Path) -> None:
    first = EmbeddedBackend(tmp_path, compaction_interval=0)
    await first.start()
    kv = await first.create("/x", b"1")
    _, last = await first.delete("/x", kv.mod_revision)
    await first.compact(last)
    await first.close()
    second = EmbeddedBackend(tmp_path, compaction_interval=0)
    await second.start()
    try:
        assert await second.current_revision() == last
        assert await second.compacted_revision() == last
        assert (await second.range("/")).kvs == []
        assert (await second.create("/y", b"")).mod_revision == last + 1
    finally:
        await second.close()


async def test_a_data_dir_cannot_be_opened_twice(tmp_path: Path) -> None:
    first = EmbeddedBackend(tmp_path, compaction_interval=0)
    await first.start()
    try:
        with pytest.raises(Unavailable, match="in use"):
            await EmbeddedBackend(tmp_path, compaction_interval=0).start()
    finally:
        await first.close()
    again = EmbeddedBackend(tmp_path, compaction_interval=0)
    await again.start()
    await again.close()


async def test_concurrent_writes_share_commits(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path, compaction_interval=0)
    await backend.start()
    commits: list[int] = []
    append = backend._disk.append

    def counting_append(rows: list) -> None:
        commits.append(len(rows))
        append(rows)

    backend._disk.append = counting_append  # type: ignore[method-assign]
    try:
        async with asyncio.timeout(BOUND):
            kvs = await asyncio.gather(*(backend.create(f"/g/{i:03d}", b"x") for i in range(200)))
        assert sorted(kv.mod_revision for kv in kvs) == list(range(2, 202))
        assert sum(commits) == 200
        assert len(commits) < 200
    finally:
        await backend.close()


async def test_uncommitted_writes_are_invisible_and_conflicts_wait_for_them(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path, compaction_interval=0)
    await backend.start()
    release = threading.Event()
    append = backend._disk.append

    def slow_append(rows: list) -> None:
        assert release.wait(BOUND)
        append(rows)

    backend._disk.append = slow_append  # type: ignore[method-assign]
    try:
        first = asyncio.create_task(backend.create("/u", b"first"))
        await asyncio.sleep(0)
        second = asyncio.create_task(backend.create("/u", b"second"))
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert await backend.get("/u") == (None, 1)
        assert await backend.current_revision() == 1
        assert (await backend.range("/")).kvs == []
        assert not second.done()  # it must not report a value nobody can read yet
        release.set()
        async with asyncio.timeout(BOUND):
            kv = await first
            with pytest.raises(KeyExists) as err:
                await second
        assert err.value.current == kv
    finally:
        release.set()
        await backend.close()


async def test_a_failed_commit_stops_writes_and_reports_unhealthy(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path, compaction_interval=0)
    await backend.start()
    kept = await backend.create("/f/kept", b"1")
    assert await backend.healthy() == (True, "")

    def broken_append(rows: list) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    append = backend._disk.append
    backend._disk.append = broken_append  # type: ignore[method-assign]
    try:
        async with asyncio.timeout(BOUND):
            results = await asyncio.gather(*(backend.create(f"/f/{i}", b"x") for i in range(5)),
                                           return_exceptions=True)
        assert all(isinstance(r, Unavailable) for r in results)
        ok, reason = await backend.healthy()
        assert not ok and "disk I/O error" in reason
        backend._disk.append = append  # type: ignore[method-assign]
        with pytest.raises(Unavailable):
            await backend.update("/f/kept", b"2", kept.mod_revision)
        assert await backend.get("/f/kept") == (kept, kept.mod_revision)  # reads still served
    finally:
        await backend.close()

    reopened = EmbeddedBackend(tmp_path, compaction_interval=0)
    await reopened.start()
    try:
        assert (await reopened.range("/f/")).kvs == [kept]
        assert await reopened.healthy() == (True, "")
        assert (await reopened.create("/f/new", b"")).mod_revision == kept.mod_revision + 1
    finally:
        await reopened.close()


async def test_a_watcher_that_falls_behind_is_dropped_without_blocking_writes(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path, compaction_interval=0, watch_queue_limit=50)
    await backend.start()
    try:
        slow = backend.watch("/", 1)
        fast = backend.watch("/", 1)
        kv = await backend.create("/w", b"0")
        async with asyncio.timeout(BOUND):
            assert len(await anext(slow)) == 1
            for i in range(1, 101):  # the slow watcher consumes nothing meanwhile
                kv = await backend.update("/w", b"%d" % i, kv.mod_revision)
                assert (await anext(fast))[-1].revision == kv.mod_revision
            with pytest.raises(WatcherTooSlow):
                while True:
                    await anext(slow)
        await fast.aclose()
    finally:
        await backend.close()


async def test_history_is_compacted_when_it_exceeds_the_limit(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path, compaction_interval=0, history_limit_events=100)
    await backend.start()
    try:
        kv = await backend.create("/h", b"0")
        for i in range(300):
            kv = await backend.update("/h", b"%d" % i, kv.mod_revision)
        async with asyncio.timeout(BOUND):
            while await backend.compacted_revision() < kv.mod_revision - 110:
                await asyncio.sleep(0.01)
        compacted = await backend.compacted_revision()
        assert compacted <= kv.mod_revision - 100  # the newest 100 events are still there
        with pytest.raises(Compacted):
            await backend.get("/h", compacted - 1)
        watch = backend.watch("/h", kv.mod_revision - 100)
        async with asyncio.timeout(BOUND):
            assert [e.revision for e in await anext(watch)] == list(
                range(kv.mod_revision - 99, kv.mod_revision + 1))
        await watch.aclose()
    finally:
        await backend.close()


async def test_periodic_compaction_keeps_one_interval_of_history(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path, compaction_interval=0.05)
    await backend.start()
    try:
        first = await backend.create("/p", b"0")
        async with asyncio.timeout(BOUND):
            while await backend.compacted_revision() < first.mod_revision:
                await asyncio.sleep(0.01)
        # compaction goes to a revision seen one interval earlier, never beyond what exists
        assert await backend.compacted_revision() == first.mod_revision
        assert await backend.get("/p") == (first, first.mod_revision)
    finally:
        await backend.close()


async def test_a_reopened_store_answers_exactly_as_before(tmp_path: Path) -> None:
    rng = random.Random(5)
    names = [f"/m/{i:02d}" for i in range(20)]

    async def answers(backend: EmbeddedBackend) -> tuple:
        current = await backend.current_revision()
        compacted = await backend.compacted_revision()
        ranges = [(await backend.range("/m/", revision=r)).kvs for r in range(max(compacted, 1), current + 1)]
        watch = backend.watch("/m/", compacted)
        events: list = []
        async with asyncio.timeout(BOUND):
            while len(events) < current - max(compacted, 1):
                events.extend(await anext(watch))
        await watch.aclose()
        return current, compacted, ranges, events

    state: dict[str, KeyValue] = {}
    for session in range(4):
        backend = EmbeddedBackend(tmp_path, compaction_interval=0)
        await backend.start()
        try:
            if session:
                assert await answers(backend) == before
            for i in range(150):
                key = rng.choice(names)
                if key not in state:
                    state[key] = await backend.create(key, b"%d" % i)
                elif rng.random() < 0.3:
                    await backend.delete(key, state.pop(key).mod_revision)
                else:
                    state[key] = await backend.update(key, b"%d" % i, state[key].mod_revision)
            current = await backend.current_revision()
            await backend.compact(rng.randint(await backend.compacted_revision(), current))
            before = await answers(backend)
        finally:
            await backend.close()
