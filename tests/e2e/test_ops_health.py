"""``/healthz``, ``/livez``, ``/readyz`` (``?verbose``, ``?exclude``, per-check paths),
``/version`` and the ``/metrics`` exposition against the real server (SPEC §1)."""
from __future__ import annotations

import shutil

import pytest

from tests.e2e.conftest import start_server
from tests.e2e.harness import API, ServerProcess, new_tmp_dir


@pytest.fixture(scope="module")
def api():
    srv = ServerProcess(new_tmp_dir("extserver-health-"), extra_args=["--api-module", "tests.e2e.faulty"]).start()
    yield API(srv)
    srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


def test_plain_answers_are_ok(api):
    for path in ("/healthz", "/livez", "/readyz"):
        r = api.get(path)
        assert r.status_code == 200 and r.text == "ok"
        assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_verbose_lists_the_checks_in_kube_format(api):
    r = api.get("/readyz", params={"verbose": ""})
    assert r.status_code == 200
    lines = r.text.splitlines()
    assert lines[0] == "[+]ping ok" and lines[-1] == "readyz check passed"
    assert "[+]storage ok" in lines and "[+]shutdown ok" in lines
    assert lines[-2] == "[+]shutdown ok"  # listed last, as kube does
    healthz = api.get("/healthz?verbose").text.splitlines()
    assert healthz[-1] == "healthz check passed" and "[+]storage ok" in healthz
    assert "[+]shutdown ok" not in healthz
    # liveness does not depend on storage: a storage outage must not get the process killed
    assert api.get("/livez?verbose").text == "[+]ping ok\nlivez check passed\n"


def test_exclude(api):
    r = api.get("/readyz", params=[("verbose", "1"), ("exclude", "storage"), ("exclude", "nope")])
    assert r.status_code == 200
    lines = r.text.splitlines()
    assert "[+]storage excluded: ok" in lines
    assert 'warn: some health checks cannot be excluded: no matches for "nope"' in lines


def test_per_check_paths(api):
    for path in ("/readyz/storage", "/readyz/ping", "/readyz/shutdown", "/healthz/storage", "/livez/ping"):
        r = api.get(path)
        assert r.status_code == 200 and r.text == "ok", path
    for path in ("/readyz/nope", "/livez/storage", "/healthz/shutdown"):
        r = api.get(path)
        assert r.status_code == 404 and r.json()["reason"] == "NotFound", path


def test_version(api):
    v = api.get("/version").json()
    assert v["major"] == "1" and v["minor"].isdigit()
    assert v["gitVersion"].startswith("v1.") and v["platform"].startswith("linux/")
    assert {"gitCommit", "gitTreeState", "buildDate", "goVersion", "compiler"} <= set(v)


def test_metrics_exposition(api):
    api.get("/apis")
    text = api.get("/metrics").text
    lines = text.splitlines()
    # every sample belongs to a family announced by HELP and TYPE
    declared = {ln.split()[2]: ln.split()[3] for ln in lines if ln.startswith("# TYPE ")}
    for name in ("apiserver_request_total", "apiserver_request_duration_seconds",
                 "apiserver_current_inflight_requests", "apiserver_registered_watchers",
                 "process_start_time_seconds"):
        assert name in declared, name
    assert declared["apiserver_request_total"] == "counter"
    assert declared["apiserver_request_duration_seconds"] == "histogram"
    for ln in lines:
        if ln and not ln.startswith("#"):
            name = ln.split("{", 1)[0].split(" ", 1)[0]
            base = name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
            assert name in declared or base in declared, ln
    assert 'apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="",' \
           'scope="",subresource="",verb="GET",version=""}' in text


@pytest.mark.etcd
def test_readyz_names_the_etcd_check(request):
    srv = start_server(request, "etcd3")
    try:
        api = API(srv)
        assert "[+]etcd ok" in api.get("/readyz?verbose").text.splitlines()
        assert api.get("/readyz/etcd").text == "ok"
        assert api.get("/livez?verbose").text == "[+]ping ok\nlivez check passed\n"
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)
