"""The Prometheus registry and exposition, the request metric labels, and the health
endpoints' answers."""
from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from extserver.filters.chain import RequestContext
from extserver.filters.requestinfo import parse_request_info
from extserver.server.health import Health, adapt
from extserver.server.metrics import MetricsRegistry, RequestMetrics, dry_run_label, metrics_scope, metrics_verb


def test_counter_gauge_exposition_and_escaping():
    reg = MetricsRegistry()
    c = reg.counter("cache_requests_total", "Cache lookups.", ["status", "zone"])
    c.labels(status="hit", zone='a"b\\c\nd').inc()
    c.labels("hit", 'a"b\\c\nd').inc(2)
    c.labels("miss", "z").inc()
    g = reg.gauge("things", "Things now.")
    g.inc(3)
    g.dec()
    assert reg.counter("cache_requests_total", "again", ["status", "zone"]) is c
    with pytest.raises(ValueError):
        reg.gauge("cache_requests_total", "other type")
    with pytest.raises(ValueError):
        c.labels("only-one")
    with pytest.raises(ValueError):
        c.labels(status="x")
    reg.add_collector(lambda: "extra_metric 7")
    assert reg.render() == (
        "# HELP cache_requests_total Cache lookups.\n"
        "# TYPE cache_requests_total counter\n"
        'cache_requests_total{status="hit",zone="a\\"b\\\\c\\nd"} 3\n'
        'cache_requests_total{status="miss",zone="z"} 1\n'
        "# HELP things Things now.\n"
        "# TYPE things gauge\n"
        "things 2\n"
        "extra_metric 7\n")


def test_histogram_is_cumulative_with_sorted_labels():
    reg = MetricsRegistry()
    h = reg.histogram("lat_seconds", "Latency.", ["verb", "code"], buckets=[0.1, 1])
    for v in (0.05, 0.1, 0.5, 3):
        h.labels(verb="GET", code="200").observe(v)
    text = reg.render().splitlines()
    assert text[2:] == ['lat_seconds_bucket{code="200",verb="GET",le="0.1"} 2',
                        'lat_seconds_bucket{code="200",verb="GET",le="1"} 3',
                        'lat_seconds_bucket{code="200",verb="GET",le="+Inf"} 4',
                        'lat_seconds_sum{code="200",verb="GET"} 3.65',
                        'lat_seconds_count{code="200",verb="GET"} 4']


def ctx_for(method: str, path: str, headers: dict | None = None) -> RequestContext:
    req = make_mocked_request(method, path, headers=headers or {})
    ctx = RequestContext(req, "a", 0.0, 0.0)
    ctx.info = parse_request_info(method, path.split("?")[0], req.query)
    return ctx


@pytest.mark.parametrize("method,path,headers,verb,scope", [
    ("GET", "/apis/g/v1/namespaces/n/things/x", {}, "GET", "resource"),
    ("GET", "/apis/g/v1/namespaces/n/things", {}, "LIST", "namespace"),
    ("GET", "/apis/g/v1/things", {}, "LIST", "cluster"),
    ("GET", "/apis/g/v1/namespaces/n/things?watch=1", {}, "WATCH", "namespace"),
    ("POST", "/apis/g/v1/namespaces/n/things", {}, "POST", "resource"),
    ("PUT", "/apis/g/v1/namespaces/n/things/x/status", {}, "PUT", "resource"),
    ("PATCH", "/apis/g/v1/namespaces/n/things/x", {"Content-Type": "application/apply-patch+yaml"}, "APPLY",
     "resource"),
    ("DELETE", "/apis/g/v1/namespaces/n/things", {}, "DELETECOLLECTION", "namespace"),
    ("GET", "/apis/g/v1/namespaces/n/pods/x/exec", {}, "CONNECT", "resource"),
    ("GET", "/healthz", {}, "GET", ""),
    ("BREW", "/coffee", {}, "other", ""),
])
def test_verb_and_scope_as_kube_reports_them(method, path, headers, verb, scope):
    ctx = ctx_for(method, path, headers)
    assert metrics_verb(ctx) == verb and metrics_scope(ctx) == scope


def test_dry_run_label():
    assert dry_run_label(make_mocked_request("POST", "/x")) == ""
    assert dry_run_label(make_mocked_request("POST", "/x?dryRun=All&dryRun=All")) == "All"
    assert dry_run_label(make_mocked_request("POST", "/x?dryRun=Some")) == "invalid"


def test_request_metrics_hide_unknown_resources():
    reg = MetricsRegistry()
    m = RequestMetrics(reg)
    m.observe(ctx_for("GET", "/apis/evil.example.com/v1/namespaces/n/x1"), False, 404, 0.001)
    m.observe(ctx_for("GET", "/apis/g/v1/namespaces/n/things/a"), True, 200, 0.3)
    m.observe(ctx_for("GET", "/readyz"), False, 200, 0.001)
    text = reg.render()
    assert "evil" not in text and "x1" not in text
    assert ('apiserver_request_total{code="404",component="apiserver",dry_run="",group="",resource="",'
            'scope="namespace",subresource="",verb="LIST",version=""} 1') in text
    assert ('apiserver_request_total{code="200",component="apiserver",dry_run="",group="g",resource="things",'
            'scope="resource",subresource="",verb="GET",version="v1"} 1') in text
    assert 'subresource="/readyz"' in text  # kube labels the probes with their path
    assert ('apiserver_request_duration_seconds_bucket{component="apiserver",dry_run="",group="g",'
            'resource="things",scope="resource",subresource="",verb="GET",version="v1",le="0.2"} 0') in text
    assert ('apiserver_request_duration_seconds_bucket{component="apiserver",dry_run="",group="g",'
            'resource="things",scope="resource",subresource="",verb="GET",version="v1",le="0.4"} 1') in text


# --- health -------------------------------------------------------------------------------
def health() -> Health:
    h = Health()
    state = {"db": (True, ""), "warm": (False, "cache not warm")}

    async def ping():
        return True, ""

    h.add("ping", ping, livez=True)
    h.add("db", adapt(lambda: state["db"]))
    h.add("poststarthook/warm", adapt(lambda: state["warm"]), healthz=False)
    h.state = state  # type: ignore[attr-defined]
    return h


async def answer(h: Health, path: str):
    kind, _, sub = path.split("?")[0].lstrip("/").partition("/")
    resp = await h.handle(make_mocked_request("GET", path), kind, sub)
    return (resp.status, resp.text) if resp is not None else None


async def test_health_text_format():
    h = health()
    assert await answer(h, "/healthz") == (200, "ok")
    assert await answer(h, "/healthz?verbose") == (200, "[+]ping ok\n[+]db ok\nhealthz check passed\n")
    assert await answer(h, "/readyz") == (500, "[+]ping ok\n[+]db ok\n[-]poststarthook/warm failed: reason withheld\n"
                                                "readyz check failed\n")
    assert await answer(h, "/readyz?exclude=poststarthook/warm&exclude=zzz&exclude=aaa") == (
        200, "ok")
    assert await answer(h, "/readyz?verbose&exclude=poststarthook/warm&exclude=zzz&exclude=aaa") == (
        200, '[+]ping ok\n[+]db ok\n[+]poststarthook/warm excluded: ok\n'
             'warn: some health checks cannot be excluded: no matches for "aaa","zzz"\nreadyz check passed\n')
    assert await answer(h, "/readyz/poststarthook/warm") == (500, "internal server error: cache not warm\n")
    assert await answer(h, "/readyz/db") == (200, "ok")
    assert await answer(h, "/livez?verbose") == (200, "[+]ping ok\nlivez check passed\n")
    assert await answer(h, "/livez/db") is None
    h.state["warm"] = (True, "")  # type: ignore[attr-defined]
    assert await answer(h, "/readyz") == (200, "ok")
    with pytest.raises(ValueError):
        h.add("db", adapt(lambda: True))


async def test_adapt_accepts_bool_tuple_sync_async():
    async def coro():
        return False, "down"

    assert await adapt(lambda: True)() == (True, "")
    assert await adapt(lambda: False)() == (False, "not ready")
    assert await adapt(coro)() == (False, "down")
