"""``--workers``: the default core count and the summed /metrics exposition."""
from __future__ import annotations

import os

import pytest

from extserver.options import FlagError
from extserver.options.workers import available_cpus, resolve_workers
from extserver.server.metrics import MetricsRegistry, merge_expositions


def test_available_cpus_follows_affinity_and_cgroup_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert available_cpus(cpu_max) == affinity
    cpu_max.write_text("50000 100000\n")  # half a core: one worker
    assert available_cpus(cpu_max) == 1
    cpu_max.write_text(f"{(affinity + 8) * 100000} 100000\n")  # a quota above the affinity
    assert available_cpus(cpu_max) == affinity
    assert available_cpus(tmp_path / "missing") == affinity


def test_resolve_workers():
    assert resolve_workers(None, "embedded") == 1
    assert resolve_workers(1, "embedded") == 1
    assert resolve_workers(3, "etcd3") == 3
    assert resolve_workers(0, "etcd3") == available_cpus()
    with pytest.raises(FlagError, match="^--workers 2: the embedded store is served by one process"):
        resolve_workers(2, "embedded")


def test_merge_expositions_sums_samples_and_keeps_one_header():
    texts = []
    for n, started in ((3, 100.5), (4, 99.25)):
        reg = MetricsRegistry()
        reg.counter("apiserver_request_total", "Requests.", ("verb", "code")).labels("GET", "200").inc(n)
        h = reg.histogram("apiserver_request_duration_seconds", "Latency.", ("verb",), buckets=(0.1, 1.0))
        for _ in range(n):
            h.labels("GET").observe(0.05)
        reg.gauge("apiserver_registered_watchers", "Watchers.", ("kind",)).labels("Flunder").set(n - 2)
        reg.add_collector(lambda s=started: "# HELP process_start_time_seconds Start.\n"
                                            "# TYPE process_start_time_seconds gauge\n"
                                            f"process_start_time_seconds {s}\n")
        texts.append(reg.render())
    merged = merge_expositions(texts)
    lines = merged.splitlines()
    assert lines.count("# TYPE apiserver_request_total counter") == 1
    assert 'apiserver_request_total{code="200",verb="GET"} 7' in lines
    assert 'apiserver_request_duration_seconds_bucket{verb="GET",le="0.1"} 7' in lines
    assert 'apiserver_request_duration_seconds_count{verb="GET"} 7' in lines
    assert 'apiserver_registered_watchers{kind="Flunder"} 3' in lines
    assert "process_start_time_seconds 99.25" in lines
    # a family keeps its HELP and TYPE right before its samples
    i = lines.index("# TYPE apiserver_registered_watchers gauge")
    assert lines[i - 1].startswith("# HELP apiserver_registered_watchers ")
    assert lines[i + 1].startswith("apiserver_registered_watchers{")
