"""``--workers``: several real server processes on one port (etcd3 backend), against the
real server over TLS. Which worker served a request is read from the access log (``-v=3``):
klog's text header carries the process ID, and each request sends its own ``Audit-Id``."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid

import pytest
import requests

from tests.e2e.harness import API, FL_B, ServerProcess, flunder, new_tmp_dir

WORKERS = 2
LINE = re.compile(r"^I\d{4} [\d:.]+ +(\d+) extserver\.httplog\] HTTP .*auditID=\"([^\"]+)\"")


@pytest.fixture(scope="module")
def workers(request):
    etcd = request.getfixturevalue("etcd")
    srv = ServerProcess(new_tmp_dir("extserver-workers-"), backend="etcd3", etcd_endpoints=etcd.endpoints,
                        etcd_prefix=f"/registry-{uuid.uuid4().hex[:8]}",
                        extra_args=["--workers", str(WORKERS), "-v", "3"])
    srv.start()
    yield srv
    srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


def served_by(srv: ServerProcess, audit_ids: set[str], timeout: float = 10.0) -> dict[str, int]:
    """audit ID -> PID of the worker whose access log line names it."""
    deadline = time.monotonic() + timeout
    while True:
        found = {}
        for line in list(srv.output):
            m = LINE.match(line)
            if m and m.group(2) in audit_ids:
                found[m.group(2)] = int(m.group(1))
        if len(found) == len(audit_ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def fresh_get(srv: ServerProcess, path: str, audit_id: str) -> requests.Response:
    """One request on its own connection (a new TCP connection may land on any worker)."""
    with srv.session() as s:
        return s.get(srv.url + path, headers={"Audit-Id": audit_id}, timeout=30)


def worker_pids(srv: ServerProcess) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(srv.proc.pid)], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_requests_are_served_by_every_worker(workers):
    pids = worker_pids(workers)
    assert len(pids) == WORKERS and workers.proc.pid not in pids
    ids = {f"spread-{i}-{uuid.uuid4().hex[:6]}" for i in range(24)}
    for a in ids:
        assert fresh_get(workers, "/apis/wardle.example.com/v1beta1", a).status_code == 200
    served = served_by(workers, ids)
    assert len(served) == len(ids)
    assert set(served.values()) == pids


def test_metrics_are_summed_over_workers(workers):
    api = API(workers)
    path = "/apis/wardle.example.com/v1beta1/namespaces/metrics-sum/flunders"
    labels = dict(verb="LIST", group="wardle.example.com", version="v1beta1", resource="flunders",
                  scope="namespace", code="200")
    before = metric(api.get("/metrics").text, "apiserver_request_total", **labels)
    ids = {f"count-{i}-{uuid.uuid4().hex[:6]}" for i in range(20)}
    for a in ids:
        assert fresh_get(workers, path, a).status_code == 200
    assert len(set(served_by(workers, ids).values())) == WORKERS  # both workers counted some
    text = api.get("/metrics").text
    assert metric(text, "apiserver_request_total", **labels) == before + len(ids)
    # one family header however many workers, and the histogram's count agrees
    assert text.count("# TYPE apiserver_request_total counter") == 1
    count = metric(text, "apiserver_request_duration_seconds_count", verb="LIST", resource="flunders",
                   scope="namespace")
    assert count >= len(ids)
    assert text.count("\nprocess_start_time_seconds ") == 1


def test_write_through_one_worker_reaches_watches_on_every_worker(workers):
    ns = "w-" + uuid.uuid4().hex[:6]
    path = f"{FL_B}/namespaces/{ns}/flunders"
    rv = API(workers).get(path).json()["metadata"]["resourceVersion"]
    names = [f"f{i}" for i in range(12)]
    watch_ids = [f"watch-{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    received: dict[str, list[str]] = {a: [] for a in watch_ids}
    streams = []
    for a in watch_ids:
        s = workers.session()
        r = s.get(workers.url + path, params={"watch": "1", "resourceVersion": rv, "timeoutSeconds": "8"},
                  headers={"Audit-Id": a}, stream=True, timeout=30)
        assert r.status_code == 200
        streams.append((a, s, r))

    def read(a: str, r: requests.Response) -> None:
        for line in r.iter_lines():
            if line:
                ev = json.loads(line)
                received[a].append(ev["object"]["metadata"]["name"])

    readers = [threading.Thread(target=read, args=(a, r), daemon=True) for a, _s, r in streams]
    for t in readers:
        t.start()
    create_ids = {}
    for n in names:
        a = f"create-{n}-{uuid.uuid4().hex[:6]}"
        create_ids[a] = n
        with workers.session() as s:
            r = s.post(workers.url + path, data=json.dumps(flunder(n)), timeout=30,
                       headers={"Audit-Id": a, "Content-Type": "application/json"})
            assert r.status_code == 201, r.text
    for t in readers:
        t.join(30)
    for a, s, r in streams:
        r.close()
        s.close()
    for a in watch_ids:
        assert received[a] == names  # every event, in order, on every watch
    served = served_by(workers, set(watch_ids) | set(create_ids))
    assert len(served) == len(watch_ids) + len(create_ids)
    # at least one watch saw writes that another worker made
    assert any(served[w] != served[c] for w in watch_ids for c in create_ids)


def test_a_killed_worker_is_started_again(workers):
    pids = worker_pids(workers)
    victim = sorted(pids)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = worker_pids(workers)
        if len(now) == WORKERS and victim not in now:
            break
        time.sleep(0.1)
    now = worker_pids(workers)
    assert len(now) == WORKERS and victim not in now
    ids = {f"after-{i}-{uuid.uuid4().hex[:6]}" for i in range(24)}
    deadline = time.monotonic() + 30
    for a in ids:
        while True:  # the new worker may still be starting: its connections are refused until it listens
            try:
                assert fresh_get(workers, "/readyz", a).status_code == 200
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    assert set(served_by(workers, ids).values()) == now


def test_sigterm_drains_every_worker(request):
    etcd = request.getfixturevalue("etcd")
    srv = ServerProcess(new_tmp_dir("extserver-workers-"), backend="etcd3", etcd_endpoints=etcd.endpoints,
                        etcd_prefix=f"/registry-{uuid.uuid4().hex[:8]}",
                        extra_args=["--workers", str(WORKERS), "-v", "3", "--shutdown-delay-duration", "1s"])
    srv.start()
    try:
        path = f"{FL_B}/namespaces/drain/flunders"
        pids = worker_pids(srv)
        watch_ids = [f"drain-{i}-{uuid.uuid4().hex[:6]}" for i in range(8)]
        streams = []
        for a in watch_ids:
            s = srv.session()
            r = s.get(srv.url + path, params={"watch": "1"}, headers={"Audit-Id": a}, stream=True, timeout=30)
            assert r.status_code == 200
            streams.append((s, r))
        os.kill(srv.proc.pid, signal.SIGTERM)
        ended = []
        for s, r in streams:  # every watch, whichever worker holds it, ends cleanly (no reset)
            ended.append(b"".join(r.iter_content(None)) == b"")
            s.close()
        assert all(ended)
        assert srv.proc.wait(30) == 0
        served = served_by(srv, set(watch_ids))
        assert set(served.values()) == pids  # the watches were held by both workers
        out = "".join(srv.output)
        assert out.count("server stopped") == WORKERS + 1  # each worker, then the supervisor
        assert "Traceback" not in out
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)


def test_embedded_refuses_several_workers(tmp_path):
    srv = ServerProcess(tmp_path, backend="embedded", extra_args=["--workers", "2"])
    proc = subprocess.run(srv.command(), capture_output=True, text=True, timeout=60, cwd=str(srv.cwd))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "extserver: error: --workers 2: the embedded store is served by one process; "
        "use --storage-backend=etcd3 for more than one worker"]


def test_every_worker_reloads_the_serving_certificate(request, tmp_path):
    from tests.e2e.test_ops_tls import FileCertServer, two_serving_cas, verifies, write_pair
    etcd = request.getfixturevalue("etcd")
    _ca1, ca2 = two_serving_cas(tmp_path)
    srv = FileCertServer(tmp_path / "data", tmp_path / "ca1.crt",
                         ["--tls-cert-file", str(tmp_path / "serving.crt"),
                          "--tls-private-key-file", str(tmp_path / "serving.key"), "--workers", str(WORKERS)])
    srv.backend, srv.etcd_endpoints, srv.etcd_prefix = "etcd3", etcd.endpoints, f"/registry-{uuid.uuid4().hex[:8]}"
    srv.start()
    try:
        pids = worker_pids(srv)
        assert len(pids) == WORKERS
        write_pair(tmp_path, "serving", ca2)
        reloaded = re.compile(r"^I\d{4} [\d:.]+ +(\d+) extserver\.tls\] serving certificate reloaded")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            by = {int(m.group(1)) for m in (reloaded.match(ln) for ln in list(srv.output)) if m}
            if by == pids:
                break
            time.sleep(0.1)
        assert by == pids  # each worker reloaded the pair itself
        # every new connection, whichever worker takes it, gets the new certificate
        assert all(verifies(srv, tmp_path / "ca2.crt") for _ in range(16))
        assert not any(verifies(srv, tmp_path / "ca1.crt") for _ in range(16))
    finally:
        srv.stop()
