"""Audit policy evaluation, the event format, the log sink and the request-body tee."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

from extserver.auth.user import UserInfo
from extserver.filters.audit import (METADATA, NONE, REQUEST, REQUEST_RESPONSE, AuditEvent, AuditLogSink, AuditPolicy,
                                     Auditor, PolicyError, _tee_body, with_audit)
from extserver.filters.chain import RequestContext, status_response
from extserver.filters.requestinfo import parse_request_info
from extserver.machinery import errors as E

ALICE = UserInfo("alice", groups=("devs", "system:authenticated"))
BOB = UserInfo("bob", groups=("ops",))


def info(method: str, path: str, query: dict | None = None):
    return parse_request_info(method, path, query or {})


def policy(*rules: dict, **top) -> AuditPolicy:
    return AuditPolicy.from_dict({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": list(rules), **top})


def test_first_matching_rule_wins_and_default_is_none():
    p = policy({"level": "None", "users": ["bob"]}, {"level": "Metadata", "userGroups": ["devs"]},
               {"level": "Request", "verbs": ["get"]})
    pods = info("GET", "/apis/g/v1/namespaces/n/things/x")
    assert p.evaluate(BOB, pods)[0] == NONE
    assert p.evaluate(ALICE, pods)[0] == METADATA
    assert p.evaluate(UserInfo("carol"), pods)[0] == REQUEST
    assert p.evaluate(UserInfo("carol"), info("POST", "/apis/g/v1/namespaces/n/things"))[0] == NONE
    assert p.evaluate(None, pods)[0] == REQUEST  # no user (failed authentication): user rules do not match


def test_resource_rules():
    p = policy({"level": "RequestResponse", "resources": [{"group": "g", "resources": ["things/status"]}]},
               {"level": "Request", "resources": [{"group": "g", "resources": ["*/scale"]}]},
               {"level": "Metadata", "resources": [{"group": "g", "resources": ["things"], "resourceNames": ["a"]}]},
               {"level": "Request", "namespaces": ["kube-system"]},
               {"level": "None", "resources": [{"group": "g", "resources": ["widgets/*"]}]},
               {"level": "Metadata", "resources": [{"group": "other"}]})
    assert p.evaluate(ALICE, info("PUT", "/apis/g/v1/namespaces/n/things/x/status"))[0] == REQUEST_RESPONSE
    assert p.evaluate(ALICE, info("PUT", "/apis/g/v1/namespaces/n/things/x/scale"))[0] == REQUEST
    assert p.evaluate(ALICE, info("GET", "/apis/g/v1/namespaces/n/things/a"))[0] == METADATA
    assert p.evaluate(ALICE, info("GET", "/apis/g/v1/namespaces/n/things/b"))[0] == NONE
    assert p.evaluate(ALICE, info("GET", "/apis/x/v1/namespaces/kube-system/cms"))[0] == REQUEST
    assert p.evaluate(ALICE, info("GET", "/apis/other/v1/anything"))[0] == METADATA
    # a resource rule never matches a non-resource request
    assert p.evaluate(ALICE, info("GET", "/apis"))[0] == NONE


def test_non_resource_urls():
    p = policy({"level": "None", "nonResourceURLs": ["/healthz*", "/version"]}, {"level": "Metadata"})
    assert p.evaluate(ALICE, info("GET", "/healthz"))[0] == NONE
    assert p.evaluate(ALICE, info("GET", "/healthz/etcd"))[0] == NONE
    assert p.evaluate(ALICE, info("GET", "/version"))[0] == NONE
    assert p.evaluate(ALICE, info("GET", "/versions"))[0] == METADATA
    assert p.evaluate(ALICE, info("GET", "/apis/g/v1/namespaces/n/healthz"))[0] == METADATA


def test_omit_stages_are_the_union_of_policy_and_rule():
    p = policy({"level": "Metadata", "omitStages": ["ResponseStarted"]}, omitStages=["RequestReceived"])
    assert p.evaluate(ALICE, info("GET", "/apis"))[1] == {"RequestReceived", "ResponseStarted"}


@pytest.mark.parametrize("doc,msg", [
    ({"apiVersion": "v1", "kind": "Policy", "rules": [{"level": "None"}]}, "apiVersion/kind"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": []}, "no rules"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "Loud"}]}, "rules[0].level"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None", "omitStages": ["Later"]}]},
     "rules[0].omitStages"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
      "rules": [{"level": "None", "nonResourceURLs": ["/x"], "namespaces": ["a"]}]}, "both"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None", "nonResourceURLs": ["x"]}]},
     'must start with "/"'),
])
def test_invalid_policies(doc, msg):
    with pytest.raises(PolicyError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        AuditPolicy.from_dict(doc)


def test_load_from_yaml_file(tmp_path: Path):
    f = tmp_path / "p.yaml"
    f.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n")
    assert AuditPolicy.load(f).evaluate(ALICE, info("GET", "/"))[0] == METADATA
    with pytest.raises(PolicyError, match="--audit-policy-file"):
        AuditPolicy.load(tmp_path / "missing.yaml")


def ctx_for(method: str, path: str, *, body: bytes | None = None, headers: dict | None = None,
            user: UserInfo | None = ALICE, loop=None) -> RequestContext:
    h = {"User-Agent": "ua/1", **(headers or {})}
    kw = {}
    if body is not None:
        payload = StreamReader(mock.Mock(), 2 ** 16, loop=loop or asyncio.get_running_loop())
        payload.feed_data(body)
        payload.feed_eof()
        kw["payload"] = payload
        h.setdefault("Content-Type", "application/json")
    req = make_mocked_request(method, path, headers=h, **kw)
    ctx = RequestContext(req, "id-1", 1700000000.123456, 0.0)
    ctx.info = parse_request_info(method, path.split("?")[0], req.query)
    ctx.user = user
    return ctx


class MemorySink:
    def __init__(self) -> None:
        self.lines: list[dict] = []
        self.events = self.dropped = 0

    def write(self, line: bytes) -> None:
        self.lines.append(json.loads(line))


async def test_event_format_and_stages():
    sink = MemorySink()
    auditor = Auditor(policy({"level": "RequestResponse"}), sink)  # type: ignore[arg-type]

    async def handler(ctx: RequestContext) -> web.StreamResponse:
        body = b"".join([c async for c in ctx.request.content.iter_chunked(3)])
        assert json.loads(body)["metadata"]["name"] == "x"
        return web.json_response({"kind": "Thing", "metadata": {"name": "x", "uid": "u1"}}, status=201)

    body = b'{"metadata":{"name":"x","uid":"ignored-on-create?"}}'
    ctx = ctx_for("POST", "/apis/g/v1/namespaces/n/things?dryRun=All", body=body,
                  headers={"X-Forwarded-For": "10.0.0.1, 10.0.0.2"})
    resp = await with_audit(handler, auditor)(ctx)
    assert resp.status == 201
    received, complete = sink.lines
    assert received == {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse", "auditID": "id-1",
        "stage": "RequestReceived", "requestURI": "/apis/g/v1/namespaces/n/things?dryRun=All", "verb": "create",
        "user": {"username": "alice", "groups": ["devs", "system:authenticated"]},
        "sourceIPs": ["10.0.0.1", "10.0.0.2"], "userAgent": "ua/1",  # (a mocked request has no peer)
        "objectRef": {"resource": "things", "namespace": "n", "apiGroup": "g", "apiVersion": "v1"},
        "requestReceivedTimestamp": "2023-11-14T22:13:20.123456Z",
        "stageTimestamp": "2023-11-14T22:13:20.123456Z"}
    assert complete["stage"] == "ResponseComplete"
    assert complete["objectRef"] == {"resource": "things", "namespace": "n", "name": "x",
                                     "uid": "ignored-on-create?", "apiGroup": "g", "apiVersion": "v1"}
    assert complete["requestObject"] == json.loads(body)
    assert complete["responseObject"] == {"kind": "Thing", "metadata": {"name": "x", "uid": "u1"}}
    assert complete["responseStatus"] == {"metadata": {}, "code": 201}


async def test_status_errors_and_levels():
    sink = MemorySink()
    auditor = Auditor(policy({"level": "Metadata", "omitStages": ["RequestReceived"]}), sink)  # type: ignore[arg-type]

    async def handler(ctx: RequestContext) -> web.StreamResponse:
        return status_response(E.NotFound("g", "things", "y"))

    await with_audit(handler, auditor)(ctx_for("GET", "/apis/g/v1/namespaces/n/things/y"))
    (only,) = sink.lines
    assert only["responseStatus"] == {"metadata": {}, "status": "Failure",
                                      "message": 'things.g "y" not found', "reason": "NotFound",
                                      "details": {"name": "y", "group": "g", "kind": "things"}, "code": 404}
    assert "responseObject" not in only and "requestObject" not in only


async def test_panic_stage_and_reraise():
    sink = MemorySink()
    auditor = Auditor(policy({"level": "Metadata"}), sink)  # type: ignore[arg-type]

    async def handler(ctx: RequestContext) -> web.StreamResponse:
        raise ValueError("boom")

    with pytest.raises(ValueError):
        await with_audit(handler, auditor)(ctx_for("GET", "/apis"))
    assert [e["stage"] for e in sink.lines] == ["RequestReceived", "Panic"]
    assert sink.lines[1]["responseStatus"]["message"] == "APIServer panic'd: boom"


async def test_level_none_records_nothing_and_leaves_the_body_alone():
    sink = MemorySink()
    auditor = Auditor(policy({"level": "None"}), sink)  # type: ignore[arg-type]
    ctx = ctx_for("POST", "/apis/g/v1/namespaces/n/things", body=b"{}")
    original = ctx.request.content

    async def handler(c: RequestContext) -> web.StreamResponse:
        assert c.request.content is original
        return web.Response()

    await with_audit(handler, auditor)(ctx)
    assert sink.lines == []


async def test_tee_body_is_what_aiohttp_hands_the_handler():
    # guards the private aiohttp attributes _tee_body relies on
    ctx = ctx_for("PUT", "/x", body=b"0123456789")
    _ = ctx.request.content  # cached before the tee, as after real use
    tee = _tee_body(ctx.request, limit=4)
    assert ctx.request.content is tee
    got = b"".join([c async for c in ctx.request.content.iter_chunked(3)])
    assert got == b"0123456789"
    assert b"".join(tee.chunks).startswith(b"0123") and len(b"".join(tee.chunks)) <= 6  # bounded copy


async def test_log_sink_writes_json_lines_off_the_loop(tmp_path: Path):
    sink = AuditLogSink(str(tmp_path / "audit.log"))
    ev = AuditEvent(ctx_for("GET", "/apis"), METADATA, frozenset())
    for _ in range(100):
        sink.write(ev.line("ResponseComplete", 1700000001.0))
    await sink.close()
    lines = (tmp_path / "audit.log").read_text().splitlines()
    assert len(lines) == 100 and sink.events == 100 and sink.dropped == 0
    assert json.loads(lines[0])["stageTimestamp"] == "2023-11-14T22:13:21.000000Z"
