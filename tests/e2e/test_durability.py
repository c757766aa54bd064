"""``kill -9`` of the server during a stream of creates: after a restart every create that got
a 2xx is there (the embedded store acknowledges only committed writes)."""
from __future__ import annotations

import shutil
import signal
import threading
import time

import pytest
import requests

from tests.e2e.conftest import start_server
from tests.e2e.harness import API, ServerProcess, flunder

PATH = "/apis/wardle.example.com/v1beta1/namespaces/dur/flunders"


@pytest.mark.parametrize("backend", ["embedded", "etcd3"])
def test_kill_9_loses_no_acknowledged_create(request, backend):
    srv = start_server(request, backend)
    acked: list[str] = []
    stop = threading.Event()

    def writer(w: int):
        api = API(srv)
        for i in range(100_000):
            if stop.is_set():
                return
            name = f"w{w}-{i}"
            try:
                r = api.post(PATH, flunder(name), timeout=5)
            except requests.RequestException:
                return  # the server died mid-request: not acknowledged
            if r.status_code == 201:
                acked.append(name)

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    srv.stop(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= 200
    again = ServerProcess(srv.data_dir, backend=backend, etcd_endpoints=srv.etcd_endpoints,
                          etcd_prefix=srv.etcd_prefix)
    again.start()
    try:
        items = API(again).get(PATH).json()["items"]
        stored = {i["metadata"]["name"] for i in items}
        missing = [n for n in acked if n not in stored]
        assert not missing, f"{len(missing)} acknowledged creates lost, e.g. {missing[:5]}"
        rvs = [int(i["metadata"]["resourceVersion"]) for i in items]
        assert len(set(rvs)) == len(rvs)
        # the store keeps counting after the restart
        r = API(again).post(PATH, flunder("after-restart"))
        assert r.status_code == 201 and int(r.json()["metadata"]["resourceVersion"]) > max(rvs)
    finally:
        again.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)
