"""The ``kill -9`` loop: ``ROBUST_DURABILITY_CYCLES`` cycles of start -> 16 writers over HTTPS
(creates, and merge-patches of a per-writer counter) -> SIGKILL at a random moment -> restart.
After each restart: every acknowledged create is there, every counter is at least the last
value acknowledged for it, and a watch from the resourceVersion the cycle started at
delivers every change since, in order, with nothing missing.

``tests/e2e/test_durability.py`` checks one kill during creates on both backends; this loop
adds cycles, updates and the watch history (backends: ``ROBUST_DURABILITY_BACKENDS``,
the kill moment from ``ROBUST_SEED``)."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import threading
import time

import pytest
import requests

from tests.e2e.conftest import start_server
from tests.e2e.harness import API, ServerProcess, flunder
from tests.robustness.common import budget, record

FL = "/apis/wardle.example.com/v1beta1/namespaces/dur/flunders"
WRITERS = 16


class Writers:
    """16 threads writing until the server goes away; only 2xx answers count as acknowledged."""

    def __init__(self, srv: ServerProcess, cycle: int):
        self.cycle = cycle
        self.created: list[str] = []
        self.counters: dict[str, int] = {}  # counter object -> last acknowledged value
        self.patches = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._write, args=(srv, w), daemon=True) for w in range(WRITERS)]
        for t in self.threads:
            t.start()

    def _write(self, srv: ServerProcess, w: int) -> None:
        api = API(srv)
        counter = f"counter-w{w}"
        for i in range(1_000_000):
            try:
                if i % 3 == 2:
                    value = i
                    r = api.patch(f"{FL}/{counter}", {"metadata": {"annotations": {"count": str(value)}}},
                                  timeout=5)
                    if r.status_code == 200:
                        with self.lock:
                            self.counters[counter] = value
                            self.patches += 1
                else:
                    name = f"c{self.cycle}-w{w}-{i}"
                    r = api.post(FL, flunder(name), timeout=5)
                    if r.status_code == 201:
                        with self.lock:
                            self.created.append(name)
            except requests.RequestException:
                return  # the server died mid-request: not acknowledged

    def join(self) -> None:
        for t in self.threads:
            t.join(15)


def _watch_from(api: API, rv: str, until: int, timeout: int = 10) -> list[dict]:
    """Events of a watch from ``rv`` until one at or past revision ``until`` (or the timeout)."""
    events = []
    r = api.get(FL, params={"watch": "1", "resourceVersion": rv, "timeoutSeconds": str(timeout)}, stream=True,
                timeout=(5, timeout + 10))
    try:
        assert r.status_code == 200, r.text[:300]
        for line in r.iter_lines():
            if not line:
                continue
            ev = json.loads(line)
            events.append(ev)
            if ev.get("type") == "ERROR":
                break
            if int(ev["object"]["metadata"]["resourceVersion"]) >= until:
                break
    finally:
        r.close()
    return events


def _check_after_restart(api: API, writers: Writers, start_rv: str) -> dict:
    items = api.get(FL, timeout=60).json()
    stored = {i["metadata"]["name"]: i for i in items["items"]}
    list_rv = int(items["metadata"]["resourceVersion"])
    lost = [n for n in writers.created if n not in stored]
    behind = {c: (v, (stored.get(c, {}).get("metadata", {}).get("annotations") or {}).get("count"))
              for c, v in writers.counters.items()
              if c not in stored or int((stored[c]["metadata"].get("annotations") or {}).get("count", -1)) < v}
    # every change since the cycle started, in order, once
    changed = {int(i["metadata"]["resourceVersion"]) for i in stored.values()
               if int(i["metadata"]["resourceVersion"]) > int(start_rv)}
    events = _watch_from(api, start_rv, max(changed, default=0)) if changed else []
    errors = [e for e in events if e.get("type") == "ERROR"]
    revs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events if e.get("type") != "ERROR"]
    out_of_order = sum(1 for a, b in zip(revs, revs[1:]) if b <= a)
    missing = sorted(changed - set(revs))
    return {"lost": lost, "behind": behind, "watch_errors": errors, "out_of_order": out_of_order,
            "watch_missing": missing, "events": len(events), "list_rv": list_rv}


@pytest.mark.parametrize("backend", [b for b in os.environ.get("ROBUST_DURABILITY_BACKENDS", "embedded").split(",")
                                     if b])
def test_kill_9_loop_loses_nothing(request, backend):
    cycles = budget("DURABILITY_CYCLES", 3)
    rng = random.Random(budget("SEED", 10))
    srv = start_server(request, backend)
    totals = {"creates": 0, "patches": 0, "lost": 0, "behind": 0, "watch_gaps": 0, "events": 0}
    problems: list[str] = []
    try:
        api = API(srv)
        for w in range(WRITERS):
            assert api.post(FL, flunder(f"counter-w{w}")).status_code in (201, 409)
        for cycle in range(cycles):
            start_rv = api.get(FL).json()["metadata"]["resourceVersion"]
            writers = Writers(srv, cycle)
            time.sleep(rng.uniform(1.0, 3.0))  # the kill lands at a random point of the write stream
            srv.stop(signal.SIGKILL)
            writers.join()
            srv = ServerProcess(srv.data_dir, backend=backend, etcd_endpoints=srv.etcd_endpoints,
                                etcd_prefix=srv.etcd_prefix).start()
            api = API(srv)
            got = _check_after_restart(api, writers, start_rv)
            totals["creates"] += len(writers.created)
            totals["patches"] += writers.patches
            totals["lost"] += len(got["lost"])
            totals["behind"] += len(got["behind"])
            totals["watch_gaps"] += len(got["watch_missing"]) + got["out_of_order"] + len(got["watch_errors"])
            totals["events"] += got["events"]
            if got["lost"]:
                problems.append(f"cycle {cycle}: {len(got['lost'])} acknowledged creates lost, e.g. {got['lost'][:5]}")
            if got["behind"]:
                problems.append(f"cycle {cycle}: counters behind their acknowledged value (acked, stored): "
                                f"{dict(list(got['behind'].items())[:5])}")
            if got["watch_missing"] or got["out_of_order"] or got["watch_errors"]:
                problems.append(f"cycle {cycle}: watch from {start_rv}: {len(got['watch_missing'])} changes missing "
                                f"(e.g. revisions {got['watch_missing'][:5]}), {got['out_of_order']} out of order, "
                                f"errors {[e['object'].get('message') for e in got['watch_errors']][:2]}")
            if not writers.created:
                problems.append(f"cycle {cycle}: no create was acknowledged before the kill")
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)
    record(f"durability-{backend}", cycles=cycles, writers=WRITERS, acked_creates=totals["creates"],
           acked_patches=totals["patches"], lost_writes=totals["lost"] + totals["behind"],
           watch_events=totals["events"], watch_gaps=totals["watch_gaps"])
    assert not problems, "\n".join(problems)
