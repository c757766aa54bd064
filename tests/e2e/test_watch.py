"""Watch semantics (SPEC §5 watch) against the real server, on both storage backends."""
from __future__ import annotations

import json
import random
import socket
import shutil
import threading
import time

import pytest

from tests.e2e.conftest import start_server
from tests.e2e.harness import API, flunder


def fl_path(ns: str, name: str = "") -> str:
    base = f"/apis/wardle.example.com/v1beta1/namespaces/{ns}/flunders"
    return f"{base}/{name}" if name else base


class Watch:
    """A streaming watch read on a thread; events land in ``self.events``."""

    def __init__(self, api: API, path: str, params: dict, headers: dict | None = None):
        p = dict(params, watch="1")
        p.setdefault("timeoutSeconds", "120")  # bounded even if a test forgets to close
        self.resp = api.req("GET", path, params=p, stream=True, timeout=60, headers=headers)
        assert self.resp.status_code == 200, self.resp.text
        self.events: list[dict] = []
        self.ended = threading.Event()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        try:
            for line in self.resp.iter_lines(chunk_size=None):
                if line:
                    self.events.append(json.loads(line))
        except Exception:
            pass
        finally:
            self.ended.set()

    def wait_for(self, n: int, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < deadline and not self.ended.is_set():
            time.sleep(0.01)
        return self.events

    def close(self) -> None:
        """Drop the connection now (closing a response another thread reads would block)."""
        try:
            sock = self.resp.raw._fp.fp.raw._sock  # urllib3 response -> http.client -> socket
            sock.shutdown(socket.SHUT_RDWR)
        except (AttributeError, OSError):
            pass
        self.ended.wait(10)
        self.resp.close()


def create(api, ns, name, **kw):
    r = api.post(fl_path(ns), flunder(name, **kw))
    assert r.status_code == 201, r.text
    return r.json()


def test_watch_events_from_resource_version(api, ns):
    first = create(api, ns, "w0")
    rv0 = first["metadata"]["resourceVersion"]
    w = Watch(api, fl_path(ns), {"resourceVersion": rv0})
    try:
        obj = create(api, ns, "w1")
        obj["metadata"]["labels"] = {"x": "y"}
        assert api.put(fl_path(ns, "w1"), obj).status_code == 200
        assert api.delete(fl_path(ns, "w1")).status_code == 200
        evs = w.wait_for(3)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [
            ("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
        assert evs[1]["object"]["metadata"]["labels"] == {"x": "y"}
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
        assert rvs == sorted(rvs) and rvs[0] > int(rv0)
        assert evs[0]["object"]["apiVersion"] == "wardle.example.com/v1beta1"
    finally:
        w.close()


def test_watch_without_rv_sends_current_state_first(api, ns):
    create(api, ns, "a")
    create(api, ns, "b")
    w = Watch(api, fl_path(ns), {})
    try:
        create(api, ns, "c")
        evs = w.wait_for(3)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [
            ("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]
    finally:
        w.close()


def test_watch_selector_transitions(api, ns):
    create(api, ns, "sel", labels={"app": "x"})
    rv = api.get(fl_path(ns)).json()["metadata"]["resourceVersion"]
    w = Watch(api, fl_path(ns), {"resourceVersion": rv, "labelSelector": "app=x"})
    try:
        create(api, ns, "other", labels={"app": "y"})  # never seen
        assert api.patch(fl_path(ns, "sel"), {"metadata": {"labels": {"app": "z"}}}).status_code == 200  # leaves
        assert api.patch(fl_path(ns, "other"), {"metadata": {"labels": {"app": "x"}}}).status_code == 200  # enters
        evs = w.wait_for(2)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [
            ("DELETED", "sel"), ("ADDED", "other")]
    finally:
        w.close()


def test_watch_single_object_by_name(api, ns):
    create(api, ns, "one")
    create(api, ns, "two")
    rv = api.get(fl_path(ns)).json()["metadata"]["resourceVersion"]
    w = Watch(api, fl_path(ns, "one"), {"resourceVersion": rv})
    try:
        api.patch(fl_path(ns, "two"), {"metadata": {"labels": {"a": "b"}}})
        api.patch(fl_path(ns, "one"), {"metadata": {"labels": {"a": "b"}}})
        w.wait_for(1)
        time.sleep(0.2)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in w.events] == [("MODIFIED", "one")]
    finally:
        w.close()


def test_watch_timeout_seconds_ends_stream(api, ns):
    w = Watch(api, fl_path(ns), {"timeoutSeconds": "1", "resourceVersion": "0"})
    assert w.ended.wait(10), "the watch did not end after timeoutSeconds"
    w.close()


def test_send_initial_events_with_bookmark(api, ns):
    create(api, ns, "i1")
    create(api, ns, "i2")
    r = api.get(fl_path(ns), params={"watch": "1", "sendInitialEvents": "true"})
    assert r.status_code == 422  # needs resourceVersionMatch=NotOlderThan and bookmarks
    w = Watch(api, fl_path(ns), {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan",
                                 "allowWatchBookmarks": "true", "resourceVersion": ""})
    try:
        evs = w.wait_for(3)
        assert [e["type"] for e in evs[:3]] == ["ADDED", "ADDED", "BOOKMARK"]
        bm = evs[2]["object"]
        assert bm["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        assert bm["kind"] == "Flunder" and int(bm["metadata"]["resourceVersion"]) >= int(
            evs[1]["object"]["metadata"]["resourceVersion"])
        create(api, ns, "i3")
        evs = w.wait_for(4)
        assert (evs[3]["type"], evs[3]["object"]["metadata"]["name"]) == ("ADDED", "i3")
    finally:
        w.close()


def test_watch_table_for_kubectl(api, ns):
    create(api, ns, "tw")
    w = Watch(api, fl_path(ns), {}, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    try:
        evs = w.wait_for(1)
        assert evs[0]["type"] == "ADDED" and evs[0]["object"]["kind"] == "Table"
        assert evs[0]["object"]["rows"][0]["cells"][0] == "tw"
        # the first event carries the column definitions (kubectl prints its header from
        # them); later events omit them, as kube's watch encoder does
        assert [c["name"] for c in evs[0]["object"]["columnDefinitions"]] == [
            "Name", "Reference Type", "Reference", "Age"]
        create(api, ns, "tw2")
        evs = w.wait_for(2)
        assert evs[1]["object"]["rows"][0]["cells"][0] == "tw2"
        assert evs[1]["object"]["columnDefinitions"] is None
    finally:
        w.close()


def test_kubectl_watch_only_prints_columns(server, ns):
    """``kubectl get --watch-only --output-watch-events`` prints the columns of the first
    event's definitions, not only the EVENT column."""
    import subprocess
    from tests.e2e.harness import API as _API
    api = _API(server)
    proc = subprocess.Popen(["kubectl", "--kubeconfig", str(server.kubeconfig), "get", "flunders", "-n", ns,
                             "--watch-only", "--output-watch-events", "--request-timeout=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")) or None, daemon=True)
    reader.start()
    try:
        time.sleep(1.5)  # let the watch open first (it is --watch-only)
        create(api, ns, "kw")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(lines) < 2:
            time.sleep(0.1)
        assert lines, "kubectl printed nothing"
        assert lines[0].split() == ["EVENT", "NAME", "REFERENCE", "TYPE", "AGE"], lines
        assert lines[1].split()[:2] == ["ADDED", "kw"], lines
    finally:
        proc.kill()
        proc.wait(10)


def test_closed_watch_leaves_no_traceback(server, ns):
    """A watch client that goes away is not an error: nothing is logged for it."""
    api = API(server)
    before = len(server.output)
    for i in range(3):
        w = Watch(api, fl_path(ns), {})
        w.close()
        create(api, ns, f"gone{i}")  # the server writes to a closed connection
    time.sleep(1.0)
    api.get("/healthz")
    logged = "".join(server.output[before:])
    assert "Traceback" not in logged and "ConnectionResetError" not in logged, logged


def test_reconnecting_watcher_sees_every_event_exactly_once(api, ns):
    """1,000 writes; a watcher that drops its connection at random points and resumes from the
    last resourceVersion it saw receives every event exactly once, in order."""
    rng = random.Random(7)
    n = 1000
    start_rv = api.get(fl_path(ns)).json()["metadata"]["resourceVersion"]
    done = threading.Event()
    errors: list[str] = []

    def writer():
        try:
            for i in range(n):
                r = api.post(fl_path(ns), flunder(f"e{i:04d}"))
                if r.status_code != 201:
                    errors.append(r.text)
        finally:
            done.set()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    seen: list[tuple[str, int]] = []
    last = start_rv
    deadline = time.monotonic() + 120
    while len(seen) < n and time.monotonic() < deadline:
        w = Watch(API(api.server), fl_path(ns), {"resourceVersion": last})
        budget = rng.randint(1, 150)
        while time.monotonic() < deadline:
            w.wait_for(budget, timeout=5)
            if len(w.events) >= budget or (done.is_set() and len(seen) + len(w.events) >= n):
                break
        w.close()
        for e in w.events[:budget]:
            assert e["type"] == "ADDED", e
            seen.append((e["object"]["metadata"]["name"], int(e["object"]["metadata"]["resourceVersion"])))
        if seen:
            last = str(seen[-1][1])
    t.join(60)
    assert not errors
    assert [name for name, _ in seen] == [f"e{i:04d}" for i in range(n)]
    rvs = [rv for _, rv in seen]
    assert rvs == sorted(set(rvs))


@pytest.fixture(scope="module", params=["embedded", "etcd3"])
def compacting_server(request):
    srv = start_server(request, request.param, ["--etcd-compaction-interval", "1s"])
    yield srv
    srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


def test_watch_and_continue_from_compacted_revision_get_410(compacting_server):
    api = API(compacting_server)
    ns = "compaction"
    for i in range(5):
        assert api.post(fl_path(ns), flunder(f"c{i}")).status_code == 201
    page = api.get(fl_path(ns), params={"limit": 2}).json()
    old_rv = page["metadata"]["resourceVersion"]
    # writes across a few compaction intervals push the compacted revision past old_rv
    deadline = time.monotonic() + 30
    i = 0
    while time.monotonic() < deadline:
        api.patch(fl_path(ns, "c0"), {"metadata": {"labels": {"i": str(i)}}})
        i += 1
        time.sleep(0.25)
        r = api.get(fl_path(ns), params={"resourceVersion": old_rv, "resourceVersionMatch": "Exact"})
        if r.status_code == 410:
            break
    assert r.status_code == 410, r.text
    assert r.json()["reason"] == "Expired"
    r = api.get(fl_path(ns), params={"limit": 2, "continue": page["metadata"]["continue"]})
    assert r.status_code == 410 and r.json()["reason"] == "Expired"
    assert "continue parameter is too old" in r.json()["message"]
    w = Watch(api, fl_path(ns), {"resourceVersion": old_rv})
    evs = w.wait_for(1)
    w.close()
    assert evs[0]["type"] == "ERROR"
    st = evs[0]["object"]
    assert st["kind"] == "Status" and st["code"] == 410 and st["reason"] == "Expired"
    assert st["message"].startswith(f"too old resource version: {old_rv}")
