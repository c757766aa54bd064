"""The audit log (issue 3, item 3) against the real server: ``--audit-log-path`` JSON lines
of ``audit.k8s.io/v1`` ``Event``s at the levels an ``--audit-policy-file`` gives."""
from __future__ import annotations

import json
import shutil
import socket
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.harness import API, ServerProcess, new_tmp_dir

GADGETS = "/apis/faulty.extserver.io/v1/namespaces/{ns}/gadgets"

POLICY = """
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/metrics"]
- level: RequestResponse
  verbs: ["create"]
  resources:
  - group: faulty.extserver.io
    resources: ["gadgets"]
- level: Request
  verbs: ["patch", "update"]
  resources:
  - group: faulty.extserver.io
    resources: ["gadgets"]
- level: Metadata
  omitStages: ["RequestReceived"]
"""


def gadget(name: str) -> dict:
    return {"apiVersion": "faulty.extserver.io/v1", "kind": "Gadget", "metadata": {"name": name},
            "spec": {"data": "hello"}}


@pytest.fixture(scope="module")
def audited():
    tmp = new_tmp_dir("extserver-audit-")
    (tmp / "policy.yaml").write_text(POLICY)
    log = tmp / "audit.log"
    srv = ServerProcess(tmp / "data", extra_args=["--api-module", "tests.e2e.faulty", "--audit-log-path", str(log),
                                                  "--audit-policy-file", str(tmp / "policy.yaml")]).start()
    yield srv, log
    srv.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def events(log: Path, audit_id: str, n: int, timeout: float = 20.0) -> list[dict]:
    """The events of one request, once at least ``n`` of them are written."""
    deadline = time.monotonic() + timeout
    found: list[dict] = []
    while time.monotonic() < deadline:
        found = [e for e in (json.loads(ln) for ln in log.read_text().splitlines() if ln.strip())
                 if e["auditID"] == audit_id]
        if len(found) >= n:
            return found
        time.sleep(0.05)
    raise AssertionError(f"expected {n} audit events for {audit_id}, found {found}")


def test_create_at_request_response_level(audited):
    srv, log = audited
    api = API(srv)
    ns = "aud-" + uuid.uuid4().hex[:6]
    body = gadget("g1")
    r = api.post(GADGETS.format(ns=ns), body, headers={"Audit-ID": "create-" + ns, "User-Agent": "ops-test/1.0"})
    assert r.status_code == 201
    received, complete = events(log, "create-" + ns, 2)
    for e in (received, complete):
        assert e["kind"] == "Event" and e["apiVersion"] == "audit.k8s.io/v1"
        assert e["level"] == "RequestResponse" and e["verb"] == "create"
        assert e["requestURI"] == GADGETS.format(ns=ns)
        assert e["user"]["username"] == "extserver-admin"
        assert set(e["user"]["groups"]) == {"system:masters", "system:authenticated"}
        assert e["sourceIPs"] == ["127.0.0.1"] and e["userAgent"] == "ops-test/1.0"
        assert e["requestReceivedTimestamp"].endswith("Z") and len(e["requestReceivedTimestamp"]) == 27
    assert received["stage"] == "RequestReceived" and "responseStatus" not in received
    assert received["stageTimestamp"] == received["requestReceivedTimestamp"]
    assert complete["stage"] == "ResponseComplete"
    assert complete["stageTimestamp"] >= complete["requestReceivedTimestamp"]
    assert complete["objectRef"] == {"resource": "gadgets", "namespace": ns, "name": "g1",
                                     "apiGroup": "faulty.extserver.io", "apiVersion": "v1"}
    assert complete["responseStatus"] == {"metadata": {}, "code": 201}
    assert complete["requestObject"] == body
    created = r.json()
    assert complete["responseObject"] == created
    assert complete["annotations"] == {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}


def test_patch_at_request_level_and_reads_at_metadata(audited):
    srv, log = audited
    api = API(srv)
    ns = "aud-" + uuid.uuid4().hex[:6]
    assert api.post(GADGETS.format(ns=ns), gadget("g2")).status_code == 201
    patch = {"metadata": {"labels": {"tier": "gold"}}}
    r = api.patch(GADGETS.format(ns=ns) + "/g2", patch, headers={"Audit-ID": "patch-" + ns})
    assert r.status_code == 200
    _, done = events(log, "patch-" + ns, 2)
    assert done["level"] == "Request" and done["verb"] == "patch"
    assert done["requestObject"] == patch and "responseObject" not in done
    assert done["objectRef"]["name"] == "g2" and done["responseStatus"]["code"] == 200
    # Metadata: RequestReceived omitted by the rule, no objects
    r = api.get(GADGETS.format(ns=ns) + "/g2", headers={"Audit-ID": "get-" + ns})
    assert r.status_code == 200
    (only,) = events(log, "get-" + ns, 1)
    time.sleep(0.2)
    assert len(events(log, "get-" + ns, 1)) == 1
    assert only["stage"] == "ResponseComplete" and only["level"] == "Metadata" and only["verb"] == "get"
    assert "requestObject" not in only and "responseObject" not in only
    # an error response is recorded with its Status
    api.get(GADGETS.format(ns=ns) + "/missing", headers={"Audit-ID": "404-" + ns})
    (nf,) = events(log, "404-" + ns, 1)
    st = nf["responseStatus"]
    assert st["code"] == 404 and st["reason"] == "NotFound" and st["status"] == "Failure"
    assert st["message"] == 'gadgets.faulty.extserver.io "missing" not found'
    assert nf["verb"] == "get" and nf["objectRef"]["name"] == "missing"


def test_non_resource_requests_and_policy_none(audited):
    srv, log = audited
    api = API(srv)
    tag = uuid.uuid4().hex[:6]
    assert api.get("/healthz", headers={"Audit-ID": "health-" + tag}).status_code == 200
    assert api.get("/apis", headers={"Audit-ID": "apis-" + tag}).status_code == 200
    (apis,) = events(log, "apis-" + tag, 1)
    assert apis["verb"] == "get" and apis["requestURI"] == "/apis" and "objectRef" not in apis
    assert "health-" + tag not in log.read_text()  # level None: nothing recorded


def test_watch_has_response_started_and_complete(audited):
    srv, log = audited
    api = API(srv)
    ns = "aud-" + uuid.uuid4().hex[:6]
    w = api.get(GADGETS.format(ns=ns), params={"watch": "1", "timeoutSeconds": "60"}, stream=True,
                headers={"Audit-ID": "watch-" + ns})
    assert w.status_code == 200
    (started,) = events(log, "watch-" + ns, 1)
    assert started["stage"] == "ResponseStarted" and started["verb"] == "watch"
    assert started["responseStatus"] == {"metadata": {}, "code": 200}
    w.raw._fp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
    w.close()
    for i in range(200):  # the server notices the closed watch at its next write
        api.post(GADGETS.format(ns=ns), gadget(f"poke-{i}"))
        evs = [e for e in (json.loads(ln) for ln in log.read_text().splitlines() if ln.strip())
               if e["auditID"] == "watch-" + ns]
        if len(evs) == 2:
            break
        time.sleep(0.05)
    assert [e["stage"] for e in evs] == ["ResponseStarted", "ResponseComplete"]


def test_panic_is_audited(audited):
    srv, log = audited
    api = API(srv)
    ns = "aud-" + uuid.uuid4().hex[:6]
    r = api.post(GADGETS.format(ns=ns), gadget("explode"), headers={"Audit-ID": "panic-" + ns})
    assert r.status_code == 500
    received, panic = events(log, "panic-" + ns, 2)
    assert received["stage"] == "RequestReceived" and panic["stage"] == "Panic"
    st = panic["responseStatus"]
    assert st["code"] == 500 and st["reason"] == "InternalError"
    assert st["message"].startswith("APIServer panic'd: ")


def test_failed_authentication_is_audited(audited):
    srv, log = audited
    r = API(srv, cert=False).get(GADGETS.format(ns="x"), headers={"Audit-ID": "anon-" + uuid.uuid4().hex[:6]})
    assert r.status_code == 401
    (e,) = events(log, r.headers["Audit-Id"], 1)
    assert e["stage"] == "ResponseComplete" and e["user"] == {}
    assert e["responseStatus"]["code"] == 401 and e["responseStatus"]["reason"] == "Unauthorized"
