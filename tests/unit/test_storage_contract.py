"""The storage contract every backend must honour (etcd v3 semantics).

Only the :class:`~extserver.storage.interface.Backend` interface is used, and every key
lives under the per-test ``keyspace`` prefix, so the same tests run unchanged against any
backend listed in ``conftest.BACKEND_KINDS`` (also on a shared server). Timeouts only
bound a test that would otherwise hang; nothing asserts on speed.
"""
from __future__ import annotations

import asyncio
import random
from typing import AsyncIterator

import pytest

from extserver.storage.interface import (
    Backend,
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RevisionMismatch,
)

BOUND = 60.0  # seconds: a hang guard, not a performance assertion


async def take(watch: AsyncIterator[list[Event]], n: int) -> list[Event]:
    """At least ``n`` events from ``watch`` (whole batches)."""
    out: list[Event] = []
    async with asyncio.timeout(BOUND):
        while len(out) < n:
            out.extend(await anext(watch))
    return out


# -- single-key CRUD and compare-and-swap -----------------------------------------------

async def test_create_then_get(backend: Backend, keyspace: str) -> None:
    key = keyspace + "a"
    kv = await backend.create(key, b"v1")
    assert (kv.key, kv.value) == (key, b"v1")
    assert kv.create_revision == kv.mod_revision > 0

    got, rev = await backend.get(key)
    assert got == kv
    assert rev >= kv.mod_revision

    missing, rev2 = await backend.get(keyspace + "missing")
    assert missing is None
    assert rev2 >= kv.mod_revision


async def test_create_existing_key_raises_key_exists_with_current(backend: Backend, keyspace: str) -> None:
    key = keyspace + "a"
    kv = await backend.create(key, b"v1")
    with pytest.raises(KeyExists) as err:
        await backend.create(key, b"other")
    assert err.value.key == key
    assert err.value.current == kv
    assert (await backend.get(key))[0] == kv


async def test_update_is_compare_and_swap(backend: Backend, keyspace: str) -> None:
    key = keyspace + "a"
    kv1 = await backend.create(key, b"v1")
    kv2 = await backend.update(key, b"v2", kv1.mod_revision)
    assert kv2.value == b"v2"
    assert kv2.create_revision == kv1.create_revision
    assert kv2.mod_revision > kv1.mod_revision
    assert (await backend.get(key))[0] == kv2

    with pytest.raises(RevisionMismatch) as err:
        await backend.update(key, b"stale", kv1.mod_revision)
    assert err.value.key == key
    assert err.value.expected == kv1.mod_revision
    assert err.value.current == kv2
    assert (await backend.get(key))[0] == kv2

    with pytest.raises(KeyNotFound) as missing:
        await backend.update(keyspace + "missing", b"x", kv1.mod_revision)
    assert missing.value.key == keyspace + "missing"


async def test_delete_is_compare_and_swap(backend: Backend, keyspace: str) -> None:
    key = keyspace + "a"
    kv1 = await backend.create(key, b"v1")
    kv2 = await backend.update(key, b"v2", kv1.mod_revision)

    with pytest.raises(RevisionMismatch) as err:
        await backend.delete(key, kv1.mod_revision)
    assert err.value.current == kv2
    assert (await backend.get(key))[0] == kv2

    prev, rev = await backend.delete(key, kv2.mod_revision)
    assert prev == kv2
    assert rev > kv2.mod_revision
    assert (await backend.get(key))[0] is None
    assert await backend.current_revision() >= rev

    with pytest.raises(KeyNotFound):
        await backend.delete(key)
    with pytest.raises(KeyNotFound):
        await backend.delete(key, rev)

    again = await backend.create(key, b"v3")
    assert again.create_revision == again.mod_revision > rev
    prev, rev2 = await backend.delete(key)  # unconditional
    assert prev == again
    assert rev2 > again.mod_revision


async def test_revisions_are_global_and_strictly_increasing(backend: Backend, keyspace: str) -> None:
    keys = [keyspace + k for k in ("a", "b", "c")]
    state: dict[str, KeyValue] = {}
    revisions: list[int] = []
    for i in range(30):
        key = keys[i % 3]
        if key not in state:
            state[key] = await backend.create(key, b"%d" % i)
            revisions.append(state[key].mod_revision)
        elif i % 7 == 0:
            _, rev = await backend.delete(key, state.pop(key).mod_revision)
            revisions.append(rev)
        else:
            state[key] = await backend.update(key, b"%d" % i, state[key].mod_revision)
            revisions.append(state[key].mod_revision)
        assert await backend.current_revision() >= revisions[-1]
    assert all(a < b for a, b in zip(revisions, revisions[1:]))


# -- range ----------------------------------------------------------------------------

async def test_range_is_ordered_and_bounded_by_prefix(backend: Backend, keyspace: str) -> None:
    prefix = keyspace + "items/"
    names = [f"n{i:02d}" for i in range(15)]
    random.Random(7).shuffle(names)
    for name in names:
        await backend.create(prefix + name, name.encode())
    for sibling in ("items", "items0", "item/x", "itemsA/x"):  # near the prefix, not under it
        await backend.create(keyspace + sibling, b"x")

    res = await backend.range(prefix)
    assert [kv.key for kv in res.kvs] == [prefix + n for n in sorted(names)]
    assert [kv.value for kv in res.kvs] == [n.encode() for n in sorted(names)]
    assert res.more is False
    assert res.count == 15
    assert res.revision >= max(kv.mod_revision for kv in res.kvs)

    everything = await backend.range(keyspace)
    assert len(everything.kvs) == 19
    assert [kv.key for kv in everything.kvs] == sorted(kv.key for kv in everything.kvs)


async def test_range_paging_reads_one_snapshot(backend: Backend, keyspace: str) -> None:
    prefix = keyspace + "p/"
    originals = {}
    for i in (4, 0, 9, 2, 7, 1, 8, 3, 6, 5):
        kv = await backend.create(f"{prefix}k{i}", b"old%d" % i)
        originals[kv.key] = kv
    expected = [originals[k] for k in sorted(originals)]

    first = await backend.range(prefix, limit=3)
    assert first.kvs == expected[:3]
    assert first.more is True
    assert first.count == 10
    snapshot = first.revision

    # writes after the first page must not show in the later pages
    await backend.delete(f"{prefix}k5")
    await backend.update(f"{prefix}k7", b"new", originals[f"{prefix}k7"].mod_revision)
    await backend.create(f"{prefix}k45", b"new")
    await backend.create(f"{prefix}k99", b"new")

    pages = [first]
    while pages[-1].more and len(pages) < 10:
        last_key = pages[-1].kvs[-1].key
        page = await backend.range(prefix, start_key=last_key + "\x00", limit=3, revision=snapshot)
        assert page.revision == snapshot
        seen = sum(len(p.kvs) for p in pages)
        assert page.count == 10 - seen
        pages.append(page)
    assert [len(p.kvs) for p in pages] == [3, 3, 3, 1]
    assert pages[-1].more is False
    assert [kv for p in pages for kv in p.kvs] == expected

    now = await backend.range(prefix)
    assert now.count == 11
    assert {kv.key for kv in now.kvs} == set(originals) - {f"{prefix}k5"} | {f"{prefix}k45", f"{prefix}k99"}


async def test_range_and_get_at_an_old_revision(backend: Backend, keyspace: str) -> None:
    a1 = await backend.create(keyspace + "a", b"a1")
    b1 = await backend.create(keyspace + "b", b"b1")
    old = b1.mod_revision
    a2 = await backend.update(keyspace + "a", b"a2", a1.mod_revision)
    await backend.delete(keyspace + "b", b1.mod_revision)
    c1 = await backend.create(keyspace + "c", b"c1")

    then = await backend.range(keyspace, revision=old)
    assert then.kvs == [a1, b1]
    assert then.revision == old
    assert (then.more, then.count) == (False, 2)
    assert (await backend.range(keyspace)).kvs == [a2, c1]

    paged = await backend.range(keyspace, limit=1, revision=old)
    assert (paged.kvs, paged.more, paged.count) == ([a1], True, 2)

    assert await backend.get(keyspace + "a", old) == (a1, old)
    assert await backend.get(keyspace + "b", old) == (b1, old)
    assert await backend.get(keyspace + "c", old) == (None, old)
    assert (await backend.get(keyspace + "a", a1.mod_revision))[0] == a1
    assert (await backend.get(keyspace + "b", a1.mod_revision))[0] is None


async def test_reads_beyond_the_current_revision_raise_future_revision(backend: Backend, keyspace: str) -> None:
    await backend.create(keyspace + "a", b"1")
    future = await backend.current_revision() + 1000
    with pytest.raises(FutureRevision):
        await backend.get(keyspace + "a", future)
    with pytest.raises(FutureRevision):
        await backend.range(keyspace, revision=future)


# -- compaction ---------------------------------------------------------------------------

async def test_compaction_forgets_old_revisions_but_keeps_latest_values(backend: Backend, keyspace: str) -> None:
    old = await backend.create(keyspace + "old", b"kept")  # never written again
    gone = await backend.create(keyspace + "gone", b"x")
    kv = await backend.create(keyspace + "busy", b"0")
    for i in range(1, 6):
        kv = await backend.update(keyspace + "busy", b"%d" % i, kv.mod_revision)
    _, mid = await backend.delete(keyspace + "gone", gone.mod_revision)
    later = await backend.update(keyspace + "busy", b"later", kv.mod_revision)

    await backend.compact(mid)
    assert await backend.compacted_revision() >= mid

    with pytest.raises(Compacted):
        await backend.get(keyspace + "old", mid - 1)
    with pytest.raises(Compacted):
        await backend.range(keyspace, revision=mid - 1)
    with pytest.raises(Compacted):
        await backend.get(keyspace + "busy", old.mod_revision)

    # the compacted revision itself and everything newer stay readable
    assert await backend.get(keyspace + "old", mid) == (old, mid)
    at_mid = await backend.range(keyspace, revision=mid)
    assert at_mid.kvs == [kv, old]
    assert (await backend.range(keyspace)).kvs == [later, old]

    too_old = backend.watch(keyspace, old.mod_revision)
    with pytest.raises(Compacted):
        async with asyncio.timeout(BOUND):
            await anext(too_old)

    resumed = backend.watch(keyspace, mid)
    events = await take(resumed, 1)
    assert [(e.type, e.kv) for e in events] == [("PUT", later)]
    await resumed.aclose()


# -- watch ----------------------------------------------------------------------------

async def test_watch_replays_history_then_streams_live_events(backend: Backend, keyspace: str) -> None:
    a1 = await backend.create(keyspace + "a", b"a1")
    a2 = await backend.update(keyspace + "a", b"a2", a1.mod_revision)
    b1 = await backend.create(keyspace + "b", b"b1")

    watch = backend.watch(keyspace, a1.mod_revision)
    replayed = await take(watch, 2)
    assert [(e.type, e.key, e.revision) for e in replayed] == [
        ("PUT", a2.key, a2.mod_revision), ("PUT", b1.key, b1.mod_revision)]
    assert replayed[0].kv == a2 and replayed[0].prev_kv == a1 and not replayed[0].is_create
    assert replayed[1].kv == b1 and replayed[1].prev_kv is None and replayed[1].is_create

    _, deleted_at = await backend.delete(keyspace + "a", a2.mod_revision)
    b2 = await backend.update(keyspace + "b", b"b2", b1.mod_revision)
    live = await take(watch, 2)
    assert [(e.type, e.key, e.revision) for e in live] == [
        ("DELETE", a2.key, deleted_at), ("PUT", b2.key, b2.mod_revision)]
    assert live[0].prev_kv == a2
    assert (live[0].kv.key, live[0].kv.value) == (a2.key, a2.value)
    assert live[1].kv == b2 and live[1].prev_kv == b1
    await watch.aclose()


async def test_watch_only_sees_keys_under_its_prefix(backend: Backend, keyspace: str) -> None:
    start = await backend.create(keyspace + "start", b"")
    watch = backend.watch(keyspace + "a/", start.mod_revision)
    expected = []
    for name in ("a/1", "b/1", "a/2", "a", "ab/1", "b/2", "a/1"):
        key = keyspace + name
        current, _ = await backend.get(key)
        if current is None:
            kv = await backend.create(key, b"x")
        else:
            kv = await backend.update(key, b"y", current.mod_revision)
        if name.startswith("a/"):
            expected.append(kv.mod_revision)
    await backend.delete(keyspace + "b/1")
    end = await backend.create(keyspace + "a/end", b"")
    expected.append(end.mod_revision)

    events = await take(watch, len(expected))
    assert [e.revision for e in events] == expected
    assert all(e.key.startswith(keyspace + "a/") for e in events)
    await watch.aclose()


async def test_watch_ends_when_the_backend_closes(backend: Backend, keyspace: str) -> None:
    start = await backend.current_revision()
    watch = backend.watch(keyspace, start)
    await backend.create(keyspace + "a", b"1")
    assert len(await take(watch, 1)) == 1
    await backend.close()
    with pytest.raises(StopAsyncIteration):
        async with asyncio.timeout(BOUND):
            await anext(watch)


# -- concurrency ----------------------------------------------------------------------

async def test_concurrent_cas_increments_lose_no_update(backend: Backend, keyspace: str) -> None:
    key = keyspace + "counter"
    start = await backend.create(key, b"0")
    watch = backend.watch(key, start.mod_revision)
    committed: list[int] = []

    async def increment_50_times() -> None:
        kv, _ = await backend.get(key)
        for _ in range(50):
            for _attempt in range(10_000):
                assert kv is not None
                try:
                    kv = await backend.update(key, b"%d" % (int(kv.value) + 1), kv.mod_revision)
                except RevisionMismatch as conflict:
                    kv = conflict.current
                    continue
                committed.append(kv.mod_revision)
                break
            else:
                raise AssertionError("no progress")

    async with asyncio.timeout(BOUND * 4):
        await asyncio.gather(*(increment_50_times() for _ in range(20)))

    final, _ = await backend.get(key)
    assert final is not None and final.value == b"1000"
    assert len(set(committed)) == 1000

    events = await take(watch, 1000)
    assert [e.revision for e in events] == sorted(committed)
    assert [int(e.kv.value) for e in events] == list(range(1, 1001))
    assert all(e.prev_kv is not None and e.prev_kv.mod_revision < e.revision for e in events)
    await watch.aclose()


async def test_watch_resumed_from_last_seen_revision_sees_every_event_once(backend: Backend,
                                                                           keyspace: str) -> None:
    rng = random.Random(20240601)
    start = await backend.current_revision()
    written: list[tuple[int, str, str]] = []

    async def writer() -> None:
        state: dict[str, KeyValue] = {}
        for i in range(1000):
            key = f"{keyspace}k{i % 37:02d}"
            if key not in state:
                state[key] = await backend.create(key, b"%d" % i)
                written.append((state[key].mod_revision, key, "PUT"))
            elif i % 5 == 0:
                _, rev = await backend.delete(key, state.pop(key).mod_revision)
                written.append((rev, key, "DELETE"))
            else:
                state[key] = await backend.update(key, b"%d" % i, state[key].mod_revision)
                written.append((state[key].mod_revision, key, "PUT"))

    seen: list[tuple[int, str, str]] = []
    last = start
    writing = asyncio.create_task(writer())
    try:
        async with asyncio.timeout(BOUND * 4):
            for _session in range(10_000):
                if len(seen) >= 1000:
                    break
                budget = rng.randint(1, 60)
                watch = backend.watch(keyspace, last)
                while budget > 0 and len(seen) < 1000:
                    for event in await anext(watch):
                        seen.append((event.revision, event.key, event.type))
                        last = event.revision
                        budget -= 1
                        if budget == 0:
                            break  # drop the rest of the batch: it must come again after resuming
                await watch.aclose()
            await writing
    finally:
        writing.cancel()
    assert seen == written


async def test_reads_at_any_revision_match_a_model(backend: Backend, keyspace: str) -> None:
    """Random writes, then random paged ranges and gets at random retained revisions,
    compared with full snapshots of a model (before and after a compaction)."""
    rng = random.Random(99)
    names = [f"{keyspace}{c}{i}" for c in "abc" for i in range(8)]
    state: dict[str, KeyValue] = {}
    snapshots: dict[int, dict[str, KeyValue]] = {}
    for i in range(400):
        key = rng.choice(names)
        if key not in state:
            state[key] = await backend.create(key, b"%d" % i)
            rev = state[key].mod_revision
        elif rng.random() < 0.3:
            _, rev = await backend.delete(key, state.pop(key).mod_revision)
        else:
            state[key] = await backend.update(key, b"%d" % i, state[key].mod_revision)
            rev = state[key].mod_revision
        snapshots[rev] = dict(state)

    async def check(revisions: list[int]) -> None:
        for _ in range(300):
            rev = rng.choice(revisions)
            snap = snapshots[rev]
            prefix = rng.choice([keyspace, keyspace + "a", keyspace + "b", keyspace + "c1"])
            start = rng.choice([None, rng.choice(names), rng.choice(names) + "\x00"])
            limit = rng.choice([0, 1, 2, 5, 100])
            res = await backend.range(prefix, start_key=start, limit=limit, revision=rev)
            want = sorted((k for k in snap if k.startswith(prefix) and (start is None or k >= start)))
            shown = want[:limit] if limit else want
            assert res.kvs == [snap[k] for k in shown]
            assert (res.revision, res.more, res.count) == (rev, len(want) > len(shown), len(want))
            key = rng.choice(names)
            assert await backend.get(key, rev) == (snap.get(key), rev)

    revisions = sorted(snapshots)
    await check(revisions)
    middle = revisions[len(revisions) // 2]
    await backend.compact(middle)
    await check([r for r in revisions if r >= middle])
