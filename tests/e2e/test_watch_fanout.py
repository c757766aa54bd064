"""The watch fan-out against the real server (both backends): many watchers over TLS,
writes from several clients at once, each watcher gets every event once and in order —
also when the pushed fan-out coalesces several events into one write — in JSON, as a
Table (column definitions on the first event only) and with a label selector."""
from __future__ import annotations

import asyncio
import json
import ssl

from tests.e2e.harness import API, FL_B, flunder

WATCHERS = 150
WRITERS = 4
WRITES_EACH = 15
BOUND = 120.0  # seconds: a hang guard, not a performance assertion


async def open_watch(server, path: str, query: str, accept: str = "application/json"):
    ctx = ssl.create_default_context(cafile=str(server.ca))
    ctx.load_cert_chain(*server.client_cert)
    r, w = await asyncio.open_connection("127.0.0.1", server.port, ssl=ctx, server_hostname="localhost")
    w.write(f"GET {path}?{query} HTTP/1.1\r\nHost: localhost\r\nAccept: {accept}\r\n\r\n".encode())
    status = await r.readline()
    assert b" 200 " in status, status
    while (await r.readline()) not in (b"\r\n", b""):
        pass
    return r, w


async def read_events(r: asyncio.StreamReader, want: int) -> list[dict]:
    """``want`` watch events from a chunked body (a chunk may carry several)."""
    events: list[dict] = []
    while len(events) < want:
        size = int((await r.readline()).strip(), 16)
        assert size > 0, f"the stream ended after {len(events)} events"
        chunk = await r.readexactly(size + 2)
        events.extend(json.loads(line) for line in chunk.splitlines() if line.strip())
    return events


async def fan_out(server, ns: str) -> None:
    api = API(server)
    path = f"{FL_B}/namespaces/{ns}/flunders"
    rv = api.get(path).json()["metadata"]["resourceVersion"]
    total = WRITERS * WRITES_EACH
    conns = [await open_watch(server, path, f"watch=1&resourceVersion={rv}") for _ in range(WATCHERS)]
    table = await open_watch(server, path, f"watch=1&resourceVersion={rv}",
                             "application/json;as=Table;v=v1;g=meta.k8s.io")
    selected = await open_watch(server, path, f"watch=1&resourceVersion={rv}&labelSelector=even%3Dyes")
    readers = [asyncio.ensure_future(read_events(r, total)) for r, _ in conns + [table]]
    evens = WRITERS * ((WRITES_EACH + 1) // 2)
    selected_reader = asyncio.ensure_future(read_events(selected[0], evens))

    async def writer(k: int) -> list[str]:
        names = []
        for i in range(WRITES_EACH):
            obj = flunder(f"w{k}-{i:02d}")
            obj["metadata"]["labels"] = {"even": "yes" if i % 2 == 0 else "no"}
            r = await asyncio.to_thread(api.post, path, obj)
            assert r.status_code == 201, r.text
            names.append(r.json()["metadata"]["name"])
        return names

    written = await asyncio.gather(*(writer(k) for k in range(WRITERS)))
    async with asyncio.timeout(BOUND):
        streams = await asyncio.gather(*readers)
        picked = await selected_reader
    for _, w in conns + [table, selected]:
        w.close()
    reference = [(e["type"], e["object"]["metadata"]["name"], int(e["object"]["metadata"]["resourceVersion"]))
                 for e in streams[0]]
    assert len(reference) == total
    assert {name for _, name, _ in reference} == {n for names in written for n in names}
    assert [rv for _, _, rv in reference] == sorted({rv for _, _, rv in reference})  # in order, no repeats
    assert all(t == "ADDED" for t, _, _ in reference)
    for events in streams[1:-1]:
        assert [(e["type"], e["object"]["metadata"]["name"], int(e["object"]["metadata"]["resourceVersion"]))
                for e in events] == reference
    rows = streams[-1]
    assert [e["object"]["rows"][0]["object"]["metadata"]["name"] for e in rows] == [n for _, n, _ in reference]
    assert "columnDefinitions" in rows[0]["object"] and rows[0]["object"]["columnDefinitions"]
    assert all(not e["object"].get("columnDefinitions") for e in rows[1:])
    assert [e["object"]["metadata"]["name"] for e in picked] == \
           [n for _, n, _ in reference if int(n.rsplit("-", 1)[1]) % 2 == 0]


def test_every_watcher_gets_every_event_once_in_order(server, ns):
    asyncio.run(fan_out(server, ns))


def test_a_long_replay_arrives_whole_with_no_write_after_it(server, ns):
    """More history than one storage batch (1,000 events), and nothing written after: the
    watch delivers all of it (the push path takes a backlog batch after batch)."""
    api = API(server)
    path = f"{FL_B}/namespaces/{ns}/flunders"
    rv = api.get(path).json()["metadata"]["resourceVersion"]
    n = 2100

    async def write_all() -> None:
        sem = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            async with sem:
                r = await asyncio.to_thread(api.post, path, flunder(f"h{i:04d}"))
                assert r.status_code == 201, r.text

        await asyncio.gather(*(one(i) for i in range(n)))

    async def replay() -> list[dict]:
        r, w = await open_watch(server, path, f"watch=1&resourceVersion={rv}")
        try:
            async with asyncio.timeout(BOUND):
                return await read_events(r, n)
        finally:
            w.close()

    asyncio.run(write_all())
    events = asyncio.run(replay())
    names = [e["object"]["metadata"]["name"] for e in events]
    assert sorted(names) == [f"h{i:04d}" for i in range(n)]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(set(rvs))


def test_a_watch_with_an_unsupported_field_selector_is_refused_before_it_streams(server, ns):
    """As kube's watch handler: the selector is checked before the response starts, so the
    client gets a 400 Status (the same as the list's), not a 200 stream with an ERROR."""
    api = API(server)
    path = f"{FL_B}/namespaces/{ns}/flunders"
    listed = api.get(path, params={"fieldSelector": "spec.bogus=x"})
    watched = api.get(path, params={"watch": "1", "fieldSelector": "spec.bogus=x"})
    assert listed.status_code == watched.status_code == 400
    assert watched.json()["reason"] == "BadRequest"
    assert watched.json()["message"] == listed.json()["message"]
    assert "spec.bogus" in watched.json()["message"]
