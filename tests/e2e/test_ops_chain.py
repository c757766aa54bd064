"""The request chain against the real server process (SPEC §1, §6; issue 3 "must show"):
panic recovery, the Audit-Id header, in-flight limits (429 then recovery), the request
timeout (504) and the request metrics."""
from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import ssl
import threading
import time
import uuid

import pytest

from tests.e2e.harness import API, ServerProcess, new_tmp_dir

GADGETS = "/apis/faulty.extserver.io/v1/namespaces/{ns}/gadgets"


def gadget(name: str, data: str | None = None) -> dict:
    return {"apiVersion": "faulty.extserver.io/v1", "kind": "Gadget", "metadata": {"name": name},
            "spec": {"data": data} if data is not None else {}}


def start(extra: list[str]) -> ServerProcess:
    return ServerProcess(new_tmp_dir("extserver-ops-"),
                         extra_args=["--api-module", "tests.e2e.faulty", *extra]).start()


def stop(srv: ServerProcess) -> None:
    srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


def impersonating(name: str, groups: list[str]) -> dict[str, str]:
    """Headers that make the admin's request run as a user who is not an admin (local mode
    accepts only the admin's certificate; it may impersonate anyone)."""
    return {"Impersonate-User": name, **({"Impersonate-Group": groups[0]} if groups else {})}


def as_user(srv: ServerProcess, name: str, groups: list[str]) -> API:
    api = API(srv)
    api.s.headers.update(impersonating(name, groups))
    return api


class SlowPost:
    """A POST whose body is only partly sent: the request stays in flight until
    :meth:`finish` (or the server gives up)."""

    def __init__(self, srv: ServerProcess, path: str, body: dict, cert: tuple[str, str],
                 headers: dict[str, str] | None = None):
        raw = json.dumps(body).encode()
        ctx = ssl.create_default_context(cafile=str(srv.ca))
        ctx.load_cert_chain(*cert)
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", srv.port), timeout=60),
                                    server_hostname="127.0.0.1")
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n{extra}"
                f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n").encode()
        self.sock.sendall(head + raw[:1])
        self.rest = raw[1:]

    def finish(self) -> None:
        self.sock.sendall(self.rest)

    def response(self) -> tuple[http.client.HTTPResponse, bytes]:
        resp = http.client.HTTPResponse(self.sock)
        resp.begin()
        return resp, resp.read()

    def close(self) -> None:
        self.sock.close()


def scrape(api: API) -> str:
    r = api.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return r.text


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` whose labels include ``labels`` (0 if none)."""
    found = 0.0
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            found += float(m.group(4))
    return found


def wait_until(cond, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# --- panic recovery and Audit-Id ---------------------------------------------------------
@pytest.fixture(scope="module")
def srv():
    s = start([])
    yield s
    stop(s)


@pytest.fixture
def ns() -> str:
    return "ops-" + uuid.uuid4().hex[:8]


def test_a_handler_that_raises_is_a_500_status_and_the_server_keeps_serving(srv, ns):
    api = API(srv)
    r = api.post(GADGETS.format(ns=ns), gadget("explode"))
    assert r.status_code == 500
    st = r.json()
    assert st["kind"] == "Status" and st["status"] == "Failure" and st["reason"] == "InternalError"
    assert st["code"] == 500
    assert st["message"] == "This request caused apiserver to panic. Look in the logs for details."
    audit_id = r.headers["Audit-Id"]
    # logged with its audit ID (and the exception), never the request body
    line = wait_until(lambda: next((ln for ln in srv.output if audit_id in ln), None), "the panic log line")
    assert "panic" in line and "RuntimeError" in line
    # the server keeps serving, the same connection and new ones
    assert api.post(GADGETS.format(ns=ns), gadget("fine")).status_code == 201
    assert API(srv).get(GADGETS.format(ns=ns) + "/fine").status_code == 200
    assert api.post(GADGETS.format(ns=ns), gadget("explode")).status_code == 500
    assert api.get("/healthz").text == "ok"


def test_every_response_has_an_audit_id_and_a_given_one_is_echoed(srv, ns):
    api = API(srv)
    ids = set()
    for r in (api.get("/healthz"), api.get("/apis"), api.get(GADGETS.format(ns=ns) + "/missing"),
              api.post(GADGETS.format(ns=ns), {"kind": "Nope"}), API(srv, cert=False).get("/apis")):
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                            r.headers["Audit-Id"]), r.headers
        ids.add(r.headers["Audit-Id"])
    assert len(ids) == 5
    r = api.get(GADGETS.format(ns=ns), headers={"Audit-ID": "my-trace-42"})
    assert r.status_code == 200 and r.headers["Audit-Id"] == "my-trace-42"
    # a streaming watch carries it too
    r = api.get(GADGETS.format(ns=ns), params={"watch": "1", "timeoutSeconds": "1"}, stream=True,
                headers={"Audit-ID": "watch-trace"})
    assert r.status_code == 200 and r.headers["Audit-Id"] == "watch-trace"
    r.close()


# --- in-flight limits ----------------------------------------------------------------------
def test_429_under_an_inflight_flood_then_recovery():
    srv = start(["--max-mutating-requests-inflight", "1", "--max-requests-inflight", "1"])
    try:
        ns = "flood"
        admin = API(srv)
        bob = as_user(srv, "bob", ["developers"])
        held = SlowPost(srv, GADGETS.format(ns=ns), gadget("held"), srv.client_cert,
                        impersonating("bob", ["developers"]))
        try:
            wait_until(lambda: sample(scrape(admin), "apiserver_current_inflight_requests",
                                      request_kind="mutating") == 1, "the held request in flight")
            answers = []
            lock = threading.Lock()

            def post(i: int) -> None:
                r = bob.post(GADGETS.format(ns=ns), gadget(f"flood-{i}"))
                with lock:
                    answers.append(r)

            threads = [threading.Thread(target=post, args=(i,)) for i in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert [r.status_code for r in answers] == [429] * 20
            r = answers[0]
            assert r.headers["Retry-After"] == "1"
            st = r.json()
            assert st["reason"] == "TooManyRequests" and st["code"] == 429
            assert st["message"] == "Too many requests, please try again later."
            assert st["details"]["retryAfterSeconds"] == 1
            # reads have their own limit; probes and system:masters are never refused
            assert bob.get(GADGETS.format(ns=ns)).status_code == 200
            assert bob.get("/readyz").status_code == 200
            assert admin.post(GADGETS.format(ns=ns), gadget("by-admin")).status_code == 201
            held.finish()
            resp, body = held.response()
            assert resp.status == 201, body
        finally:
            held.close()
        # recovery: the slot is free again
        assert bob.post(GADGETS.format(ns=ns), gadget("after")).status_code == 201
        text = scrape(admin)
        assert sample(text, "apiserver_dropped_requests_total", request_kind="mutating") == 20
        assert sample(text, "apiserver_current_inflight_requests", request_kind="mutating") == 0
        assert sample(text, "apiserver_request_total", verb="POST", resource="gadgets", code="429") == 20
    finally:
        stop(srv)


# --- request timeout ---------------------------------------------------------------------
def test_request_timeout_is_a_504_status_watches_are_not_cut():
    srv = start(["--request-timeout", "1s"])
    try:
        ns = "slow"
        api = API(srv)
        w = api.get(GADGETS.format(ns=ns), params={"watch": "1", "timeoutSeconds": "60"}, stream=True)
        assert w.status_code == 200
        slow = SlowPost(srv, GADGETS.format(ns=ns), gadget("never"), srv.client_cert)
        try:
            resp, body = slow.response()  # the body never completes: the server gives up
        finally:
            slow.close()
        assert resp.status == 504
        assert resp.getheader("Connection", "").lower() == "close"
        st = json.loads(body)
        assert st["kind"] == "Status" and st["reason"] == "Timeout" and st["code"] == 504
        assert st["message"] == "Timeout: request did not complete within the allotted timeout"
        assert resp.getheader("Audit-Id")
        # a shorter ?timeout= applies too; a bad one is a 400
        r = api.get(GADGETS.format(ns=ns), params={"timeout": "abc"})
        assert r.status_code == 400
        assert r.json()["message"] == ('invalid timeout specified in the request URL - '
                                       'time: invalid duration "abc"')
        assert api.get(GADGETS.format(ns=ns), params={"timeout": "30s"}).status_code == 200
        # the watch opened before is still open, well past the 1s request timeout
        time.sleep(1.5)
        assert api.post(GADGETS.format(ns=ns), gadget("late")).status_code == 201
        line = next(ln for ln in w.iter_lines() if ln)
        ev = json.loads(line)
        assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "late"
        w.close()
        text = scrape(api)
        assert sample(text, "apiserver_request_total", verb="POST", resource="gadgets", code="504") == 1
    finally:
        stop(srv)


# --- request metrics -----------------------------------------------------------------------
def test_metrics_count_the_requests_by_verb_and_code(srv, ns):
    api = API(srv)
    before = scrape(api)
    base = GADGETS.format(ns=ns)
    for i in range(3):
        assert api.post(base, gadget(f"m{i}")).status_code == 201
    assert api.post(base, gadget("m0")).status_code == 409
    assert api.get(base + "/m1").status_code == 200
    assert api.get(base + "/m2").status_code == 200
    assert api.get(base + "/nope").status_code == 404
    assert api.get(base).status_code == 200
    assert api.patch(base + "/m1", {"metadata": {"labels": {"a": "b"}}}).status_code == 200
    assert api.delete(base + "/m2").status_code == 200
    assert api.post(base, gadget("m9"), params={"dryRun": "All"}).status_code == 201
    after = scrape(api)

    def delta(verb: str, code: str, **kw: str) -> float:
        labels = dict(verb=verb, code=code, group="faulty.extserver.io", version="v1", resource="gadgets",
                      component="apiserver", **kw)
        return sample(after, "apiserver_request_total", **labels) - sample(before, "apiserver_request_total",
                                                                            **labels)

    assert delta("POST", "201", scope="resource", dry_run="") == 3
    assert delta("POST", "201", dry_run="All") == 1
    assert delta("POST", "409") == 1
    assert delta("GET", "200", scope="resource") == 2
    assert delta("GET", "404") == 1
    assert delta("LIST", "200", scope="namespace") == 1
    assert delta("PATCH", "200") == 1
    assert delta("DELETE", "200") == 1
    # the latency histogram counted the same requests, in kube's buckets
    lab = dict(verb="GET", group="faulty.extserver.io", version="v1", resource="gadgets", scope="resource")
    n = sample(after, "apiserver_request_duration_seconds_count", **lab) - sample(
        before, "apiserver_request_duration_seconds_count", **lab)
    assert n == 3
    assert sample(after, "apiserver_request_duration_seconds_bucket", le="+Inf", **lab) == sample(
        after, "apiserver_request_duration_seconds_count", **lab)
    buckets = re.findall(r'apiserver_request_duration_seconds_bucket\{[^}]*le="([^"]+)"', after)
    assert buckets[:23] == ["0.005", "0.025", "0.05", "0.1", "0.2", "0.4", "0.6", "0.8", "1", "1.25", "1.5", "2",
                            "3", "4", "5", "6", "8", "10", "15", "20", "30", "45", "60"]
    # a URL scan of unknown resources does not create series with its names
    assert api.get("/apis/scan.example.com/v1/namespaces/x/things").status_code == 404
    assert "scan.example.com" not in scrape(api)


def test_registered_watchers_gauge(srv, ns):
    api = API(srv)
    labels = dict(group="faulty.extserver.io", version="v1", kind="Gadget")
    base = sample(scrape(api), "apiserver_registered_watchers", **labels)
    w = api.get(GADGETS.format(ns=ns), params={"watch": "1", "timeoutSeconds": "60"}, stream=True)
    assert w.status_code == 200
    assert sample(scrape(api), "apiserver_registered_watchers", **labels) == base + 1
    w.raw._fp.fp.raw._sock.shutdown(socket.SHUT_RDWR)  # the client goes away
    w.close()
    i = 0

    def gone() -> bool:
        nonlocal i
        i += 1  # the server notices at its next write to the watch
        api.post(GADGETS.format(ns=ns), gadget(f"poke-{i}"))
        return sample(scrape(api), "apiserver_registered_watchers", **labels) == base

    wait_until(gone, "the watcher to be unregistered")


def test_unauthenticated_requests_are_401_and_counted(srv):
    anon = API(srv, cert=False)
    before = scrape(API(srv))
    r = anon.get("/apis/faulty.extserver.io/v1")
    assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"
    after = scrape(API(srv))
    assert sample(after, "apiserver_request_total", code="401") - sample(before, "apiserver_request_total",
                                                                          code="401") == 1



# --- structured logs -----------------------------------------------------------------------
def test_json_logs_with_one_line_per_request_at_v3(srv):
    assert not any("HTTP" in ln and "URI=" in ln for ln in srv.output)  # -v=0: no access log
    loud = start(["--log-format", "json", "-v", "3"])
    try:
        r = API(loud).get("/apis/faulty.extserver.io/v1", headers={"User-Agent": "log-test"})
        assert r.status_code == 200
        audit_id = r.headers["Audit-Id"]

        def access_line():
            for ln in loud.output:
                if ln.startswith("{") and audit_id in ln:
                    return json.loads(ln)
            return None

        rec = wait_until(access_line, "the access log line")
        assert rec["msg"] == "HTTP" and rec["v"] == 3 and rec["logger"] == "extserver.httplog"
        assert rec["verb"] == "get" and rec["URI"] == "/apis/faulty.extserver.io/v1" and rec["resp"] == 200
        assert rec["userAgent"] == "log-test" and rec["srcIP"] == "127.0.0.1" and rec["latency"].endswith("ms")
        assert isinstance(rec["ts"], float)
        # every log line is JSON (the harness merges stdout, where the startup banner goes)
        logs = [ln for ln in loud.output if not ln.startswith("extserver: ")]
        assert logs and all(isinstance(json.loads(ln), dict) for ln in logs)
    finally:
        stop(loud)
