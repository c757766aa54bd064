#!/usr/bin/env python3
"""What the decode-edge bounds cost and what they stop, in numbers.

In process: the time to decode a large JSON body with the depth check (``jsonscan.loads``)
against ``orjson.loads`` alone, and a large YAML body with the event-stream scan
(``yamlscan.load_yaml``). Against the real server (local mode, embedded store, loopback):
the latency of refusing the issue's YAML alias bomb and of refusing JSON nested 1,000 deep,
and the server's RSS before and after 20 of each. Every loop is bounded in count.

    python bench/bench_decode_limits.py [--rounds 20]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from extserver.machinery import jsonscan, yamlscan  # noqa: E402
from tests.e2e.harness import API, FL_B, ServerProcess, flunder, new_tmp_dir  # noqa: E402
from tests.e2e.test_hardening_input import BOMB, deep_json, with_fields  # noqa: E402


def best_ms(fn, n: int = 5) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1000


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()

    items = [{"metadata": {"name": f"n{i}", "labels": {"a": "b"}}, "spec": {"x": [1, 2, 3], "y": "z" * 20}}
             for i in range(10_000)]
    body = orjson.dumps({"items": items})
    print(f"JSON body {len(body) / 1e6:.1f} MB: orjson.loads {best_ms(lambda: orjson.loads(body)):.1f} ms, "
          f"jsonscan.loads (with depth check) {best_ms(lambda: jsonscan.loads(body)):.1f} ms")
    ybody = b"items:\n" + b"".join(b"- {name: n%d, labels: {a: b}, x: [1, 2, 3]}\n" % i for i in range(10_000))
    print(f"YAML body {len(ybody) / 1e6:.1f} MB: yamlscan.load_yaml {best_ms(lambda: yamlscan.load_yaml(ybody), 3):.1f} ms")

    srv = ServerProcess(new_tmp_dir("extserver-bench-limits-")).start()
    try:
        api = API(srv)
        ns_path = f"{FL_B}/namespaces/bench/flunders"
        assert api.post(ns_path, flunder("warm")).status_code == 201
        before = rss_mb(srv.proc.pid)
        deep = deep_json(with_fields("deep", "DEEP"), 1000)
        for name, send in (("YAML alias bomb (%d bytes)" % len(BOMB),
                            lambda: api.post(ns_path, raw=BOMB.encode(), ctype="application/yaml")),
                           ("JSON nested 1,000 deep", lambda: api.post(ns_path, raw=deep))):
            lat = []
            for _ in range(args.rounds):
                t = time.perf_counter()
                r = send()
                lat.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 400, r.text
            print(f"{name}: 400 in median {statistics.median(lat):.1f} ms, max {max(lat):.1f} ms "
                  f"({args.rounds} requests)")
        print(f"server RSS {before:.0f} MB before, {rss_mb(srv.proc.pid):.0f} MB after; "
              f"/healthz {api.get('/healthz').text!r}")
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
