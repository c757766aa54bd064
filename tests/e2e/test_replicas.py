"""Several ``extserver serve`` replicas on one etcd serve one consistent API (issue 4, item 4).

Two real server processes share an etcd and an ``--etcd-prefix`` (each has its own data
dir, port and certificates). A write through one replica is seen, in order, by a watch on
the other; optimistic concurrency holds across replicas; the BanFlunder admission plugin
on one replica sees Fischers created on the other; and 20 read-modify-write writers on
both replicas for 30 s lose no update.

:class:`RMWLoad` and :class:`Follower` are reused by ``test_etcd_failures.py``.
"""
from __future__ import annotations

import collections
import json
import random
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from tests.e2e.harness import API, FL_B, ServerProcess, flunder, new_tmp_dir

COUNTER = "test.extserver.io/counter"


def fl_path(ns: str, name: str = "") -> str:
    base = f"{FL_B}/namespaces/{ns}/flunders"
    return f"{base}/{name}" if name else base


def start_replicas(endpoints: list[str], n: int = 2, prefix: str | None = None) -> list[ServerProcess]:
    """``n`` servers on the same etcd and the same ``--etcd-prefix``."""
    prefix = prefix or f"/registry-{uuid.uuid4().hex[:8]}"
    servers: list[ServerProcess] = []
    try:
        for _ in range(n):
            srv = ServerProcess(new_tmp_dir("extserver-replica-"), backend="etcd3", etcd_endpoints=endpoints,
                                etcd_prefix=prefix)
            servers.append(srv.start())
    except BaseException:
        stop_replicas(servers)
        raise
    return servers


def stop_replicas(servers: list[ServerProcess]) -> None:
    for srv in servers:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)


def counter(obj: dict) -> int:
    return int(((obj.get("metadata") or {}).get("annotations") or {}).get(COUNTER, "0"))


def rv_of(obj: dict) -> int:
    return int(obj["metadata"]["resourceVersion"])


@dataclass
class RMWLoad:
    """Writers doing GET + PUT(resourceVersion) loops that increment a per-object counter
    annotation, spread over the given replicas, for ``duration`` seconds (or until
    :meth:`stop`). ``strict``: anything but 2xx/409 is a failure; otherwise such answers
    (etcd restarting, quorum lost) are counted as unacknowledged."""

    servers: list[ServerProcess]
    ns: str
    names: list[str]
    writers: int
    duration: float
    strict: bool = True
    creates: bool = False
    #: per object: (counter value written, resourceVersion) of every 2xx update
    acked: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: collections.defaultdict(list))
    #: per object: writes whose outcome is unknown (5xx, timeout, connection lost)
    ambiguous: collections.Counter = field(default_factory=collections.Counter)
    acked_creates: list[str] = field(default_factory=list)
    conflicts: int = 0
    failures: list[str] = field(default_factory=list)
    unacknowledged: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._writer, args=(i,), daemon=True) for i in range(self.writers)]

    def start(self) -> RMWLoad:
        self._end = time.monotonic() + self.duration
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self) -> None:
        for t in self._threads:
            t.join(self.duration + 60)
        assert not any(t.is_alive() for t in self._threads), "a writer did not stop"

    @property
    def updates(self) -> int:
        return sum(len(v) for v in self.acked.values())

    def _bad(self, what: str, name: str | None = None) -> None:
        with self._lock:
            if self.strict:
                self.failures.append(what)
            else:
                self.unacknowledged += 1
                if name is not None:
                    self.ambiguous[name] += 1

    def _writer(self, i: int) -> None:
        api = API(self.servers[i % len(self.servers)])
        rng = random.Random(i)
        for step in range(10_000_000):
            if self._stop.is_set() or time.monotonic() > self._end:
                return
            if self.creates and step % 4 == 0:
                self._create(api, f"c{i}-{step}")
                continue
            name = rng.choice(self.names)
            try:
                r = api.get(fl_path(self.ns, name), timeout=15)
            except requests.RequestException as exc:
                self._bad(f"GET {name}: {exc}")
                continue
            if r.status_code != 200:
                self._bad(f"GET {name}: {r.status_code} {r.text[:200]}")
                continue
            obj = r.json()
            value = counter(obj) + 1
            obj["metadata"].setdefault("annotations", {})[COUNTER] = str(value)
            try:
                r = api.put(fl_path(self.ns, name), obj, timeout=15)
            except requests.RequestException as exc:
                self._bad(f"PUT {name}: {exc}", name)
                continue
            if r.status_code == 200:
                with self._lock:
                    self.acked[name].append((value, rv_of(r.json())))
            elif r.status_code == 409:
                with self._lock:
                    self.conflicts += 1
            else:
                self._bad(f"PUT {name}: {r.status_code} {r.text[:200]}", name)

    def _create(self, api: API, name: str) -> None:
        try:
            r = api.post(fl_path(self.ns), flunder(name), timeout=15)
        except requests.RequestException as exc:
            self._bad(f"POST {name}: {exc}")
            return
        if r.status_code == 201:
            with self._lock:
                self.acked_creates.append(name)
        else:
            self._bad(f"POST {name}: {r.status_code} {r.text[:200]}")


class Follower:
    """A client-go style list + watch of one namespace on one replica, in a thread: it
    resumes a watch that ends from the last resourceVersion it saw and, on a 410 ERROR
    event, relists. ``state`` is its view (name -> object), ``history`` the
    resourceVersions of the MODIFIED events it received per object."""

    def __init__(self, server: ServerProcess, ns: str):
        self.api = API(server)
        self.ns = ns
        self.state: dict[str, dict] = {}
        self.history: dict[str, list[int]] = collections.defaultdict(list)
        self.rv = "0"
        self.relists = 0
        self.expired = 0
        self.reconnects = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._response: requests.Response | None = None

    def start(self) -> Follower:
        self._relist()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        resp = self._response
        if resp is not None:
            try:
                resp.raw._fp.fp.raw._sock.shutdown(2)  # unblock the reading thread now
            except (AttributeError, OSError):
                pass
        self._thread.join(30)
        assert not self._thread.is_alive(), "the follower did not stop"

    def _relist(self) -> None:
        for _attempt in range(600):
            try:
                r = self.api.get(fl_path(self.ns), timeout=15)
                if r.status_code == 200:
                    doc = r.json()
                    self.state = {i["metadata"]["name"]: i for i in doc["items"]}
                    self.rv = doc["metadata"]["resourceVersion"]
                    self.relists += 1
                    return
                self.errors.append(f"list: {r.status_code}")
            except requests.RequestException as exc:
                self.errors.append(f"list: {exc}")
            if self._stop.wait(0.2):
                return
        raise RuntimeError("the follower could not list for 2 minutes")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._watch_once()
            except (requests.RequestException, ValueError) as exc:
                if not self._stop.is_set():
                    self.reconnects += 1
                    self.errors.append(f"watch: {type(exc).__name__}")
                    self._stop.wait(0.2)

    def _watch_once(self) -> None:
        params = {"watch": "1", "resourceVersion": self.rv, "allowWatchBookmarks": "true", "timeoutSeconds": "20"}
        resp = self.api.get(fl_path(self.ns), params=params, stream=True, timeout=60)
        self._response = resp
        try:
            if resp.status_code == 410:
                self.expired += 1
                self._relist()
                return
            if resp.status_code != 200:
                self.errors.append(f"watch: {resp.status_code}")
                self._stop.wait(0.2)
                return
            for line in resp.iter_lines(chunk_size=None):
                if self._stop.is_set():
                    return
                if line:
                    self._event(json.loads(line))
                    if self._expired_now:
                        self._relist()
                        return
            self.reconnects += 1
        finally:
            self._response = None
            resp.close()

    _expired_now = False

    def _event(self, ev: dict[str, Any]) -> None:
        self._expired_now = False
        obj = ev["object"]
        if ev["type"] == "ERROR":
            if obj.get("code") == 410:
                self.expired += 1
                self._expired_now = True
            else:
                self.errors.append(f"watch ERROR: {obj.get('message')}")
            return
        self.rv = obj["metadata"]["resourceVersion"]
        if ev["type"] == "BOOKMARK":
            return
        name = obj["metadata"]["name"]
        if ev["type"] == "DELETED":
            self.state.pop(name, None)
            return
        if ev["type"] == "MODIFIED":
            self.history[name].append(rv_of(obj))
        self.state[name] = obj

    def view(self) -> dict[str, int]:
        """name -> resourceVersion of the follower's view."""
        return {n: rv_of(o) for n, o in dict(self.state).items()}


def final_list(api: API, ns: str) -> dict[str, dict]:
    r = api.get(fl_path(ns), timeout=30)
    assert r.status_code == 200, r.text
    return {i["metadata"]["name"]: i for i in r.json()["items"]}


def wait_converged(followers: list[Follower], truth: dict[str, int], timeout: float = 60.0) -> None:
    """Wait (bounded) until every follower's view equals ``truth`` (name -> resourceVersion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(f.view() == truth for f in followers):
            return
        time.sleep(0.1)


@pytest.fixture(scope="module")
def replicas(etcd):
    servers = start_replicas(etcd.endpoints)
    yield servers
    stop_replicas(servers)


@pytest.fixture
def ns() -> str:
    return "r-" + uuid.uuid4().hex[:8]


def test_write_through_one_replica_is_seen_in_order_by_a_watch_on_the_other(replicas, ns):
    a, b = API(replicas[0]), API(replicas[1])
    start_rv = b.get(fl_path(ns)).json()["metadata"]["resourceVersion"]
    resp = b.get(fl_path(ns), params={"watch": "1", "resourceVersion": start_rv, "timeoutSeconds": "60"},
                 stream=True, timeout=60)
    assert resp.status_code == 200
    expected: list[tuple[str, str, int]] = []
    for i in range(10):
        r = a.post(fl_path(ns), flunder(f"x{i}"))
        assert r.status_code == 201, r.text
        expected.append(("ADDED", f"x{i}", rv_of(r.json())))
    for i in range(0, 10, 2):
        r = a.patch(fl_path(ns, f"x{i}"), {"metadata": {"labels": {"step": "2"}}})
        assert r.status_code == 200, r.text
        expected.append(("MODIFIED", f"x{i}", rv_of(r.json())))
    for i in range(0, 10, 3):
        r = a.delete(fl_path(ns, f"x{i}"))
        assert r.status_code == 200, r.text
    final = a.get(fl_path(ns)).json()
    seen: list[tuple[str, str, int]] = []
    try:
        lines = resp.iter_lines(chunk_size=None)
        while len(seen) < len(expected) + 4:
            line = next(lines)
            if line:
                ev = json.loads(line)
                seen.append((ev["type"], ev["object"]["metadata"]["name"], rv_of(ev["object"])))
    finally:
        resp.close()
    assert seen[:len(expected)] == expected
    deletes = seen[len(expected):]
    assert [(t, n) for t, n, _ in deletes] == [("DELETED", f"x{i}") for i in range(0, 10, 3)]
    rvs = [rv for _, _, rv in seen]
    assert rvs == sorted(set(rvs)) and rvs[-1] <= rv_of(final)
    # both replicas answer the same list at the same revision
    assert {i["metadata"]["name"] for i in final["items"]} == {f"x{i}" for i in range(10) if i % 3}
    exact = b.get(fl_path(ns), params={"resourceVersion": final["metadata"]["resourceVersion"],
                                       "resourceVersionMatch": "Exact"}).json()
    assert exact["items"] == final["items"]


def test_optimistic_concurrency_holds_across_replicas(replicas, ns):
    a, b = API(replicas[0]), API(replicas[1])
    created = a.post(fl_path(ns), flunder("occ")).json()
    seen_by_b = b.get(fl_path(ns, "occ")).json()
    assert seen_by_b["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    created["metadata"]["labels"] = {"by": "a"}
    r = a.put(fl_path(ns, "occ"), created)
    assert r.status_code == 200, r.text
    seen_by_b["metadata"]["labels"] = {"by": "b"}
    r = b.put(fl_path(ns, "occ"), seen_by_b)  # stale: replica A wrote since B read
    assert r.status_code == 409, r.text
    assert r.json()["reason"] == "Conflict"
    now = b.get(fl_path(ns, "occ")).json()
    assert now["metadata"]["labels"] == {"by": "a"}
    now["metadata"]["labels"] = {"by": "b"}
    assert b.put(fl_path(ns, "occ"), now).status_code == 200
    # a create of an existing name through the other replica is AlreadyExists
    r = b.post(fl_path(ns), flunder("occ"))
    assert r.status_code == 409 and r.json()["reason"] == "AlreadyExists"


def test_ban_flunder_sees_a_fischer_created_on_the_other_replica(replicas, ns):
    a, b = API(replicas[0]), API(replicas[1])
    banned = "banned-" + uuid.uuid4().hex[:6]
    fischer = {"apiVersion": "wardle.example.com/v1alpha1", "kind": "Fischer",
               "metadata": {"name": "f-" + banned}, "disallowedFlunders": [banned]}
    r = a.post("/apis/wardle.example.com/v1alpha1/fischers", fischer)
    assert r.status_code == 201, r.text
    try:
        deadline = time.monotonic() + 15  # kube's plugin reads an informer: allow it to catch up
        while True:
            r = b.post(fl_path(ns), flunder(banned))
            if r.status_code != 201 or time.monotonic() > deadline:
                break
            assert b.delete(fl_path(ns, banned)).status_code == 200
            time.sleep(0.1)
        assert r.status_code == 403, r.text
        assert r.json()["reason"] == "Forbidden"
        assert "this name may not be used, please change the resource name" in r.json()["message"]
        assert b.post(fl_path(ns), flunder("allowed-" + banned)).status_code == 201
    finally:
        a.delete("/apis/wardle.example.com/v1alpha1/fischers/f-" + banned)


def test_read_modify_write_load_on_two_replicas_loses_no_update(replicas, ns):
    """20 writers (10 per replica) update the same 50 objects for 30 s with GET + PUT
    loops; every 2xx update is reflected, every conflict is a 409, and a watcher on each
    replica sees the same resourceVersions per object as the writers were acknowledged."""
    a = API(replicas[0])
    names = [f"o{i:02d}" for i in range(50)]
    for name in names:
        assert a.post(fl_path(ns), flunder(name)).status_code == 201
    followers = [Follower(srv, ns).start() for srv in replicas]
    load = RMWLoad(replicas, ns, names, writers=20, duration=30.0).start()
    load.join()
    assert not load.failures, f"{len(load.failures)} failed requests, e.g. {load.failures[:5]}"
    final = final_list(a, ns)
    wait_converged(followers, {n: rv_of(o) for n, o in final.items()})
    for f in followers:
        f.stop()
    assert load.updates > 0 and load.conflicts > 0  # there was contention
    for name in names:
        acked = load.acked[name]
        assert counter(final[name]) == len(acked), name  # every 2xx update is reflected
        assert sorted(v for v, _ in acked) == list(range(1, len(acked) + 1)), name
        acked_rvs = sorted(rv for _, rv in acked)
        for f in followers:
            assert f.history[name] == acked_rvs, (name, f.api.base)
    for f in followers:
        assert f.relists == 1 and f.expired == 0, (f.relists, f.expired, f.errors[:5])
    print(f"\nRMW load: {load.updates} updates, {load.conflicts} conflicts in 30 s on 2 replicas")
