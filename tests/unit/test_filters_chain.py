"""The request-chain filters one by one: panic recovery, authentication, authorization,
in-flight limits, the request timeout."""
from __future__ import annotations

import asyncio
import json
import time
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

from extserver.auth.user import UserInfo
from extserver.filters.authentication import with_authentication
from extserver.filters.authorization import path_matcher, with_authorization
from extserver.filters.chain import RequestContext
from extserver.filters.inflight import InflightCounters, with_max_inflight
from extserver.filters.panic import PANIC_MESSAGE, with_panic_recovery
from extserver.filters.requestinfo import is_long_running, parse_request_info
from extserver.filters.timeout import parse_go_duration, with_timeout
from extserver.machinery import errors as E

BOB = UserInfo("bob", groups=("devs", "system:authenticated"))
ADMIN = UserInfo("admin", groups=("system:masters",))


def ctx_for(method: str = "GET", path: str = "/apis/g/v1/namespaces/n/things", *, user: UserInfo | None = BOB,
            body: bytes | None = None) -> RequestContext:
    kw = {}
    if body is not None:
        payload = StreamReader(mock.Mock(), 2 ** 16, loop=asyncio.get_running_loop())
        payload.feed_data(body)
        kw["payload"] = payload
    req = make_mocked_request(method, path, **kw)
    ctx = RequestContext(req, "audit-1", time.time(), time.monotonic())
    ctx.info = parse_request_info(method, path.split("?")[0], req.query)
    ctx.long_running = is_long_running(ctx.info)
    ctx.user = user
    return ctx


async def ok(ctx: RequestContext) -> web.StreamResponse:
    return web.Response(text="ok")


def status_of(resp: web.StreamResponse) -> dict:
    return json.loads(resp.body)  # type: ignore[attr-defined]


# --- panic recovery ----------------------------------------------------------------------
async def test_panic_recovery(caplog):
    async def boom(ctx: RequestContext) -> web.StreamResponse:
        raise KeyError("oops")

    resp = await with_panic_recovery(boom)(ctx_for())
    assert resp.status == 500
    assert status_of(resp) == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": PANIC_MESSAGE, "reason": "InternalError", "code": 500}
    assert any(getattr(r, "kv", {}).get("auditID") == "audit-1" and r.exc_info for r in caplog.records)

    async def refused(ctx: RequestContext) -> web.StreamResponse:
        raise E.Conflict("g", "things", "x")

    assert (await with_panic_recovery(refused)(ctx_for())).status == 409

    async def gone(ctx: RequestContext) -> web.StreamResponse:
        raise ConnectionResetError()

    with pytest.raises(ConnectionResetError):  # the client left: nothing to answer
        await with_panic_recovery(gone)(ctx_for())


# --- authentication ------------------------------------------------------------------------
async def test_authentication_anonymous_401_and_credential_stripping():
    async def who(request: web.Request) -> UserInfo | None:
        if request.headers.get("Authorization") == "Bearer bad":
            raise E.Unauthorized()
        return UserInfo("bob") if request.headers.get("Authorization") == "Bearer good" else None

    seen: list[RequestContext] = []

    async def record(ctx: RequestContext) -> web.StreamResponse:
        seen.append(ctx)
        return web.Response()

    def strip(request: web.Request) -> web.Request:
        return request.clone(headers={k: v for k, v in request.headers.items() if k != "Authorization"})

    failures: list[int] = []
    chain = with_authentication(record, who, anonymous_auth=True, strip_credentials=strip,
                                on_failure=lambda ctx, resp: failures.append(resp.status))
    ctx = ctx_for(user=None)
    ctx.request = make_mocked_request("GET", "/apis", headers={"Authorization": "Bearer good"})
    await chain(ctx)
    assert seen[-1].user == UserInfo("bob", groups=("system:authenticated",))
    assert "Authorization" not in seen[-1].request.headers
    ctx = ctx_for(user=None)
    await chain(ctx)
    assert seen[-1].user.name == "system:anonymous" and seen[-1].user.groups == ("system:unauthenticated",)
    ctx = ctx_for(user=None)
    ctx.request = make_mocked_request("GET", "/apis", headers={"Authorization": "Bearer bad"})
    resp = await chain(ctx)
    assert resp.status == 401 and failures == [401] and len(seen) == 2
    resp = await with_authentication(record, who, anonymous_auth=False)(ctx_for(user=None))
    assert resp.status == 401 and status_of(resp)["reason"] == "Unauthorized"


# --- authorization -------------------------------------------------------------------------
async def test_authorization_denies_with_kubes_message_and_allows_paths():
    asked = []

    async def deny(user: UserInfo, info) -> tuple[bool, str]:
        asked.append(info.path)
        return False, "no"

    chain = with_authorization(ok, deny, always_allow_paths=["/healthz", "/debug/*"])
    resp = await chain(ctx_for("GET", "/apis/g/v1/namespaces/n/things/x"))
    assert resp.status == 403
    assert status_of(resp)["message"] == ('things.g "x" is forbidden: User "bob" cannot get resource "things" in API '
                                          'group "g" in the namespace "n"')
    resp = await chain(ctx_for("GET", "/metrics"))
    assert status_of(resp)["message"] == 'forbidden: User "bob" cannot get path "/metrics"'
    for path in ("/healthz", "/debug/pprof", "/debug/"):
        assert (await chain(ctx_for("GET", path))).status == 200
    assert (await chain(ctx_for("GET", "/healthz/etcd"))).status == 403  # exact unless it ends in *
    assert asked == ["/apis/g/v1/namespaces/n/things/x", "/metrics", "/healthz/etcd"]

    async def broken(user: UserInfo, info) -> tuple[bool, str]:
        raise E.StatusError("Internal Server Error: review failed", code=500, reason="InternalError")

    assert (await with_authorization(ok, broken)(ctx_for())).status == 500


def test_path_matcher():
    m = path_matcher(["/healthz", "/api*"])
    assert m("/healthz") and m("/api") and m("/apis/x") and not m("/healthz/x") and not m("/ap")
    with pytest.raises(ValueError):
        path_matcher(["/a*/b"])


# --- in-flight limits ----------------------------------------------------------------------
async def test_inflight_limits_per_kind_with_exemptions():
    gate = asyncio.Event()

    async def slow(ctx: RequestContext) -> web.StreamResponse:
        await gate.wait()
        return web.Response()

    counters = InflightCounters()
    chain = with_max_inflight(slow, counters, max_read_only=2, max_mutating=1)
    held = [asyncio.create_task(chain(ctx_for("GET"))) for _ in range(2)]
    held.append(asyncio.create_task(chain(ctx_for("POST"))))
    await asyncio.sleep(0)
    assert (counters.read_only, counters.mutating) == (2, 1)
    resp = await chain(ctx_for("GET"))
    assert resp.status == 429 and resp.headers["Retry-After"] == "1"
    st = status_of(resp)
    assert st["reason"] == "TooManyRequests" and st["message"] == "Too many requests, please try again later."
    assert st["details"] == {"retryAfterSeconds": 1}
    assert (await chain(ctx_for("DELETE", "/apis/g/v1/namespaces/n/things/x"))).status == 429
    assert (counters.dropped_read_only, counters.dropped_mutating) == (1, 1)
    # not counted, not refused: watches, probes, system:masters
    exempt = [asyncio.create_task(chain(c)) for c in (
        ctx_for("GET", "/apis/g/v1/namespaces/n/things?watch=1"), ctx_for("GET", "/readyz"),
        ctx_for("GET", "/livez/ping"), ctx_for("POST", user=ADMIN))]
    await asyncio.sleep(0)
    assert not any(t.done() for t in exempt)  # all reached the handler (waiting on the gate)
    assert (counters.read_only, counters.mutating) == (2, 1)
    assert (await chain(ctx_for("GET", "/readyzz"))).status == 429  # only the probe paths are exempt
    gate.set()
    assert [r.status for r in await asyncio.gather(*held, *exempt)] == [200] * 7
    assert (counters.read_only, counters.mutating) == (0, 0)
    assert (await chain(ctx_for("POST"))).status == 200  # recovered


async def test_inflight_zero_means_unlimited():
    counters = InflightCounters()
    chain = with_max_inflight(ok, counters, max_read_only=0, max_mutating=0)
    assert (await chain(ctx_for("POST"))).status == 200


# --- timeout -------------------------------------------------------------------------------
async def test_timeout_answers_504_at_the_deadline_and_drops_the_late_answer():
    release = asyncio.Event()
    finished = asyncio.Event()

    async def slow(ctx: RequestContext) -> web.StreamResponse:
        await release.wait()
        finished.set()
        return web.Response(text="late")

    ctx = ctx_for()
    sent: list[web.StreamResponse] = []

    async def prepare(resp, request):  # stands for aiohttp sending the 504 at once
        sent.append(resp)

    with mock.patch.object(web.Response, "prepare", lambda self, req: prepare(self, req)), \
            mock.patch.object(web.Response, "write_eof", mock.AsyncMock()):
        task = asyncio.create_task(with_timeout(slow, 0.05)(ctx))
        for _ in range(200):
            if sent:
                break
            await asyncio.sleep(0.01)
        assert sent and sent[0].status == 504 and not task.done()  # answered while the handler runs
        release.set()
        resp = await task
    assert finished.is_set() and resp is sent[0]
    st = status_of(resp)
    assert st["reason"] == "Timeout"
    assert st["message"] == "Timeout: request did not complete within the allotted timeout"
    assert not resp.keep_alive  # Connection: close


async def test_timeout_fails_pending_body_reads():
    ctx = ctx_for("POST", body=b"{")  # the body never completes

    async def reader(c: RequestContext) -> web.StreamResponse:
        await c.request.content.read()
        return web.Response()

    with mock.patch.object(web.Response, "prepare", mock.AsyncMock()), \
            mock.patch.object(web.Response, "write_eof", mock.AsyncMock()):
        resp = await asyncio.wait_for(with_timeout(reader, 0.05)(ctx), 10)
    assert resp.status == 504


async def test_timeout_fast_handlers_long_running_and_query():
    assert (await with_timeout(ok, 0.5)(ctx_for())).text == "ok"
    resp = await with_timeout(ok, 0.5)(ctx_for("GET", "/apis/g/v1/namespaces/n/things?timeout=1x"))
    assert resp.status == 400
    assert status_of(resp)["message"] == ('invalid timeout specified in the request URL - '
                                          'time: unknown unit "x" in duration "1x"')

    async def raises(ctx: RequestContext) -> web.StreamResponse:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):  # before the deadline an error is the handler's own
        await with_timeout(raises, 5)(ctx_for())

    async def watch(ctx: RequestContext) -> web.StreamResponse:
        await asyncio.sleep(0.1)
        return web.Response(text="watched")

    # a watch outlives the request timeout
    assert (await with_timeout(watch, 0.01)(ctx_for("GET", "/apis/g/v1/namespaces/n/things?watch=true"))).text \
        == "watched"


@pytest.mark.parametrize("text,seconds", [("0", 0.0), ("300ms", 0.3), ("1m30s", 90.0), ("1.5h", 5400.0),
                                          ("-2s", -2.0), ("2us", 2e-6), ("1h2m3s4ms", 3723.004), (".5s", 0.5)])
def test_go_durations(text, seconds):
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text,msg", [("", 'time: invalid duration ""'), ("abc", 'time: invalid duration "abc"'),
                                      ("5", 'time: missing unit in duration "5"'),
                                      ("5d", 'time: unknown unit "d" in duration "5d"')])
def test_bad_go_durations(text, msg):
    with pytest.raises(ValueError) as e:
        parse_go_duration(text)
    assert str(e.value) == msg
