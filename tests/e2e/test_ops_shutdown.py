"""Graceful shutdown on SIGTERM (SPEC §1; issue 3 "must show"): ``/readyz`` fails first, a
long list in flight completes, an open watch ends cleanly, the process exits 0."""
from __future__ import annotations

import json
import os
import shutil
import signal
import time

import requests

from tests.e2e.harness import API, ServerProcess, new_tmp_dir

GADGETS = "/apis/faulty.extserver.io/v1/namespaces/{ns}/gadgets"
BIG = 1_000_000  # bytes of data per object
COUNT = 40  # a 40 MB list: far more than the socket buffers, so it is in flight until read


def gadget(name: str, data: str = "") -> dict:
    return {"apiVersion": "faulty.extserver.io/v1", "kind": "Gadget", "metadata": {"name": name},
            "spec": {"data": data}}


def test_sigterm_during_a_long_list_and_an_open_watch():
    srv = ServerProcess(new_tmp_dir("extserver-shutdown-"),
                        extra_args=["--api-module", "tests.e2e.faulty", "--shutdown-delay-duration", "2s"]).start()
    try:
        api = API(srv)
        for i in range(COUNT):
            assert api.post(GADGETS.format(ns="big"), gadget(f"g{i:02d}", "x" * BIG)).status_code == 201
        watch = API(srv).get(GADGETS.format(ns="quiet"), params={"watch": "1", "timeoutSeconds": "120"},
                             stream=True)
        assert watch.status_code == 200
        assert api.post(GADGETS.format(ns="quiet"), gadget("hello")).status_code == 201
        lines = watch.iter_lines()
        first = json.loads(next(ln for ln in lines if ln))
        assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "hello"

        listing = API(srv).get(GADGETS.format(ns="big"), stream=True, timeout=120)  # headers only: in flight
        assert listing.status_code == 200

        os.kill(srv.proc.pid, signal.SIGTERM)
        # /readyz fails first (the listener still accepts during --shutdown-delay-duration)
        deadline = time.monotonic() + 20
        r = api.get("/readyz", params={"verbose": "1"})
        while r.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.02)
            r = api.get("/readyz", params={"verbose": "1"})
        assert r.status_code == 500
        assert "[-]shutdown failed: reason withheld" in r.text.splitlines()
        assert r.text.endswith("readyz check failed\n")
        assert api.get("/livez").status_code == 200  # alive, only not ready

        # after the delay the listener closes and the watch ends cleanly: the stream
        # terminates (a broken chunked encoding would raise here)
        rest = [ln for ln in lines if ln]
        assert rest == []
        # while draining, the list in flight since before SIGTERM still completes
        doc = json.loads(listing.content)
        assert [it["metadata"]["name"] for it in doc["items"]] == [f"g{i:02d}" for i in range(COUNT)]
        assert all(len(it["spec"]["data"]) == BIG for it in doc["items"])
        assert srv.proc.wait(60) == 0
        # and new connections are refused
        try:
            requests.get(srv.url + "/healthz", timeout=5, verify=False)
            refused = False
        except requests.ConnectionError:
            refused = True
        assert refused
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)
    assert any("server stopped" in ln for ln in srv.output)
