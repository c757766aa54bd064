"""Impersonation (issue 10, item 5) against the real ``extserver serve`` process: the
``Impersonate-*`` headers as kube's ``WithImpersonation`` applies them.

Local mode: the admin (``system:masters``) may impersonate anyone, ``kubectl --as`` runs as
that identity (the local authorizer refuses unauthenticated identities, so the outcome
shows who the request ran as) and the audit log records ``impersonatedUser``.

Cluster mode, against the kube-apiserver TEST stand-in: every impersonated attribute is a
``SubjectAccessReview`` with the verb ``impersonate``; a denial is kube's 403; when allowed,
the request itself is reviewed for the impersonated identity; a front-proxy identity (the
main apiserver already impersonated) is never impersonated again."""
from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.e2e.cluster_harness import ClusterEnv, ClusterServer
from tests.e2e.harness import API, ServerProcess, new_tmp_dir
from tests.e2e.test_clients import kubectl

G, V = "wardle.example.com", "v1beta1"
AUTHENTICATED, UNAUTHENTICATED = "system:authenticated", "system:unauthenticated"
POLICY = """
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*"]
- level: Metadata
"""


def flunders(ns: str, name: str = "") -> str:
    return f"/apis/{G}/{V}/namespaces/{ns}/flunders" + (f"/{name}" if name else "")


def audit_events(log: Path, match, n: int, timeout: float = 20.0) -> list[dict]:
    """The events of the first request ``match(event)`` (an audit ID, or a predicate)
    selects, once ``n`` of them are written."""
    pred = (lambda e: e["auditID"] == match) if isinstance(match, str) else match
    deadline = time.monotonic() + timeout
    found: list[dict] = []
    while time.monotonic() < deadline:
        every = [json.loads(ln) for ln in log.read_text().splitlines() if ln.strip()]
        first = next((e for e in every if pred(e)), None)
        found = [e for e in every if first is not None and e["auditID"] == first["auditID"]]
        if len(found) >= n:
            return found
        time.sleep(0.05)
    raise AssertionError(f"expected {n} audit events, found {found}")


def forbidden(message: str, kind: str, name: str = "", group: str = "") -> dict:
    details: dict = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = kind
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": "Forbidden", "details": details, "code": 403}


# --- local mode -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local():
    tmp = new_tmp_dir("extserver-impersonation-")
    (tmp / "policy.yaml").write_text(POLICY)
    log = tmp / "audit.log"
    srv = ServerProcess(tmp / "data", extra_args=["--audit-log-path", str(log),
                                                  "--audit-policy-file", str(tmp / "policy.yaml")]).start()
    yield srv, log
    srv.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def flunder_yaml(name: str, ns: str) -> str:
    return yaml.safe_dump({"apiVersion": f"{G}/{V}", "kind": "Flunder", "metadata": {"name": name, "namespace": ns},
                           "spec": {}})


def test_kubectl_as_bob_creates_as_bob_and_the_audit_log_says_so(local):
    srv, log = local
    ns = "imp-" + uuid.uuid4().hex[:6]
    kubectl(srv, "--as=bob", "create", "-f", "-", input=flunder_yaml("by-bob", ns))
    # the create's events: user = the admin who asked, impersonatedUser = bob (kube's groups)
    received, complete = audit_events(
        log, lambda e: e["verb"] == "create" and e.get("objectRef", {}).get("namespace") == ns, 2)
    assert received["stage"] == "RequestReceived" and "impersonatedUser" not in received
    assert complete["stage"] == "ResponseComplete" and complete["responseStatus"]["code"] == 201
    assert complete["user"]["username"] == "extserver-admin"
    assert complete["impersonatedUser"] == {"username": "bob", "groups": [AUTHENTICATED]}
    assert list(complete)[:8] == ["kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "user"]
    assert list(complete)[8] == "impersonatedUser"  # kube's field order: after user


def test_kubectl_as_an_unauthenticated_identity_is_refused_as_that_identity(local):
    srv, _ = local
    p = kubectl(srv, "--as=system:anonymous", "get", "flunders", "-n", "imp-x", check=False)
    assert p.returncode != 0
    assert p.stderr.strip() == (
        'Error from server (Forbidden): flunders.wardle.example.com is forbidden: User "system:anonymous" cannot '
        'list resource "flunders" in API group "wardle.example.com" in the namespace "imp-x"')
    p = kubectl(srv, "--as=bob", "--as-group=system:unauthenticated", "get", "flunders", "-n", "imp-x", check=False)
    assert 'User "bob" cannot list resource "flunders"' in p.stderr
    # bob (with system:authenticated added) may
    assert kubectl(srv, "--as=bob", "get", "flunders", "-n", "imp-x").returncode == 0


def test_service_account_extras_and_uid_are_the_impersonated_identity(local):
    srv, log = local
    r = API(srv).get(flunders("imp-sa"), headers={
        "Impersonate-User": "system:serviceaccount:team:robot", "Impersonate-Uid": "uid-7",
        "Impersonate-Extra-Acme.com%2FProject": "p1", "Audit-ID": "imp-sa-" + uuid.uuid4().hex[:6]})
    assert r.status_code == 200, r.text
    _, complete = audit_events(log, r.headers["Audit-Id"], 2)
    assert complete["impersonatedUser"] == {
        "username": "system:serviceaccount:team:robot", "uid": "uid-7",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:team", AUTHENTICATED],
        "extra": {"acme.com/project": ["p1"]}}


def test_a_watch_runs_as_the_impersonated_user(local):
    srv, log = local
    ns = "imp-w-" + uuid.uuid4().hex[:6]
    r = API(srv).get(flunders(ns), params={"watch": "1", "timeoutSeconds": "1"}, stream=True,
                     headers={"Impersonate-User": "wanda", "Audit-ID": "imp-watch-" + ns})
    assert r.status_code == 200 and r.headers["Audit-Id"] == "imp-watch-" + ns
    r.close()
    events = audit_events(log, "imp-watch-" + ns, 3)
    assert [e["stage"] for e in events] == ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    assert [e.get("impersonatedUser") for e in events] == [None] + [{"username": "wanda",
                                                                     "groups": [AUTHENTICATED]}] * 2


def test_groups_without_a_user_is_kubes_internal_error(local):
    srv, _ = local
    path = flunders("imp-g") + "?limit=5&x=<a>"
    r = API(srv).s.get(srv.url + path, headers={"Impersonate-Group": "devs", "Impersonate-Extra-Scopes": "s1"})
    assert r.status_code == 500
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    uri = r.request.path_url
    assert r.text == (f'Internal Server Error: "{uri.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")}":'
                      ' requested [{Group  devs    } {UserExtra  s1  authentication.k8s.io/v1  scopes}] '
                      'without impersonating a user\n')
    r = API(srv).get(flunders("imp-g"), headers={"Impersonate-Uid": "u1"})
    assert r.status_code == 500 and "requested [{UID  u1  authentication.k8s.io/v1  }] without" in r.text


# --- cluster mode, behind the stand-in ---------------------------------------------------
@pytest.fixture(scope="module")
def env():
    e = ClusterEnv()
    e.standin.allow_users("bob", "front-bob")  # may do everything, impersonation included
    e.standin.add_token("tok-alice", "alice", uid="a-1", groups=["ops"])
    e.standin.add_token("tok-mallory", "mallory", groups=["ops"])
    yield e
    e.close()


@pytest.fixture(scope="module")
def cluster(env):
    tmp = new_tmp_dir("extserver-impersonation-cluster-")
    (tmp / "policy.yaml").write_text(POLICY)
    log = tmp / "audit.log"
    srv = ClusterServer(env, extra_args=["--audit-log-path", str(log),
                                         "--audit-policy-file", str(tmp / "policy.yaml")]).start()
    yield srv, log
    srv.close()
    shutil.rmtree(tmp, ignore_errors=True)


def reviews_since(env: ClusterEnv, n: int) -> list[dict]:
    return [r.spec for r in env.standin.access_reviews[n:]]


def impersonate(**attrs: str) -> dict:
    return dict({"verb": "impersonate"}, **attrs)


ALICE = {"user": "alice", "uid": "a-1", "groups": ["ops", AUTHENTICATED]}


def test_unprivileged_user_impersonating_is_kubes_403(env, cluster):
    srv, _ = cluster
    n = len(env.standin.access_reviews)
    a = srv.request("GET", flunders("imp-c1"), headers=[("Authorization", "Bearer tok-mallory"),
                                                        ("Impersonate-User", "bob")])
    assert a.status == 403
    assert a.json() == forbidden('users "bob" is forbidden: User "mallory" cannot impersonate resource "users" in '
                                 'API group "" at the cluster scope', "users", "bob")
    assert a.headers["X-Content-Type-Options"] == "nosniff"
    # one review, for the impersonation; the request itself was never authorized
    assert reviews_since(env, n) == [{"user": "mallory", "groups": ["ops", AUTHENTICATED], "resourceAttributes":
                                      impersonate(version="v1", resource="users", name="bob")}]


def test_allowed_impersonation_runs_the_request_as_the_impersonated_user(env, cluster):
    srv, log = cluster
    env.standin.grant("alice", verb="impersonate", version="v1", resource="users", name="bob")
    n = len(env.standin.access_reviews)
    a = srv.request("GET", flunders("imp-c2"), headers=[("Authorization", "Bearer tok-alice"),
                                                        ("Impersonate-User", "bob"), ("Audit-ID", "imp-c2")])
    assert a.status == 200 and a.json()["kind"] == "FlunderList"
    assert reviews_since(env, n) == [
        dict(ALICE, resourceAttributes=impersonate(version="v1", resource="users", name="bob")),
        {"user": "bob", "groups": [AUTHENTICATED], "resourceAttributes": {
            "namespace": "imp-c2", "verb": "list", "group": G, "version": V, "resource": "flunders"}}]
    _, complete = audit_events(log, "imp-c2", 2)
    assert complete["user"] == {"username": "alice", "uid": "a-1", "groups": ["ops", AUTHENTICATED]}
    assert complete["impersonatedUser"] == {"username": "bob", "groups": [AUTHENTICATED]}


def test_every_impersonated_attribute_is_reviewed_in_kubes_order(env, cluster):
    srv, _ = cluster
    grants = [dict(version="v1", resource="users", name="bea"), dict(version="v1", resource="groups", name="devs"),
              dict(group="authentication.k8s.io", version="v1", resource="userextras", subresource="acme.com/scope",
                   name="s1"),
              dict(group="authentication.k8s.io", version="v1", resource="uids", name="b-9")]
    for g in grants:
        env.standin.grant("alice", verb="impersonate", **g)
    env.standin.allow_users("bea")
    n = len(env.standin.access_reviews)
    a = srv.request("GET", flunders("imp-c3"), headers=[
        ("Authorization", "Bearer tok-alice"), ("Impersonate-Uid", "b-9"), ("Impersonate-User", "bea"),
        ("Impersonate-Extra-Acme.com%2Fscope", "s1"), ("Impersonate-Group", "devs")])
    assert a.status == 200, a.body
    assert reviews_since(env, n) == [dict(ALICE, resourceAttributes=impersonate(**g)) for g in grants] + [
        {"user": "bea", "uid": "b-9", "groups": ["devs", AUTHENTICATED], "extra": {"acme.com/scope": ["s1"]},
         "resourceAttributes": {"namespace": "imp-c3", "verb": "list", "group": G, "version": V,
                                "resource": "flunders"}}]


def test_escalating_to_system_masters_is_refused(env, cluster):
    srv, _ = cluster
    env.standin.grant("alice", verb="impersonate", version="v1", resource="users", name="bob")
    a = srv.request("DELETE", flunders("imp-c4"), headers=[("Authorization", "Bearer tok-alice"),
                                                           ("Impersonate-User", "bob"),
                                                           ("Impersonate-Group", "system:masters")])
    assert a.status == 403
    assert a.json() == forbidden('groups "system:masters" is forbidden: User "alice" cannot impersonate resource '
                                 '"groups" in API group "" at the cluster scope', "groups", "system:masters")


def test_service_account_is_reviewed_in_its_namespace_with_its_groups(env, cluster):
    srv, _ = cluster
    env.standin.grant("alice", verb="impersonate", namespace="team", version="v1", resource="serviceaccounts",
                      name="robot")
    n = len(env.standin.access_reviews)
    a = srv.request("GET", flunders("imp-c5"), headers=[("Authorization", "Bearer tok-alice"),
                                                        ("Impersonate-User", "system:serviceaccount:team:robot")])
    assert a.status == 403  # the service account itself may not list flunders
    assert a.json()["message"] == ('flunders.wardle.example.com is forbidden: User "system:serviceaccount:team:robot" '
                                   'cannot list resource "flunders" in API group "wardle.example.com" in the '
                                   'namespace "imp-c5"')
    assert reviews_since(env, n) == [
        dict(ALICE, resourceAttributes=impersonate(namespace="team", version="v1", resource="serviceaccounts",
                                                   name="robot")),
        {"user": "system:serviceaccount:team:robot",
         "groups": ["system:serviceaccounts", "system:serviceaccounts:team", AUTHENTICATED],
         "resourceAttributes": {"namespace": "imp-c5", "verb": "list", "group": G, "version": V,
                                "resource": "flunders"}}]
    # a denied service account: namespaced message
    a = srv.request("GET", flunders("imp-c5"), headers=[("Authorization", "Bearer tok-alice"),
                                                        ("Impersonate-User", "system:serviceaccount:other:robot")])
    assert a.json()["message"] == ('serviceaccounts "robot" is forbidden: User "alice" cannot impersonate resource '
                                   '"serviceaccounts" in API group "" in the namespace "other"')


def test_the_reviews_reason_and_a_failed_review(env, cluster):
    srv, _ = cluster
    env.standin.sar_policy = lambda spec: {"allowed": False, "reason": "no impersonation on fridays"}
    try:
        a = srv.request("GET", flunders("imp-c6"), headers=[("Authorization", "Bearer tok-mallory"),
                                                            ("Impersonate-User", "carl")])
    finally:
        env.standin.sar_policy = env.standin._default_policy
    assert a.json()["message"] == ('users "carl" is forbidden: User "mallory" cannot impersonate resource "users" '
                                   'in API group "" at the cluster scope: no impersonation on fridays')
    # a review that fails: kube answers the impersonation check with a 403 (not the 500 of
    # the request's own authorization)
    env.standin.sar_error = (403, "Forbidden", "the delegator may not create subjectaccessreviews")
    try:
        a = srv.request("GET", flunders("imp-c6"), headers=[("Authorization", "Bearer tok-mallory"),
                                                            ("Impersonate-User", "dora")])
    finally:
        env.standin.sar_error = None
    assert a.status == 403 and a.json()["message"] == (
        'users "dora" is forbidden: User "mallory" cannot impersonate resource "users" in API group "" at the '
        'cluster scope')


def test_group_without_user_in_cluster_mode(env, cluster):
    srv, _ = cluster
    n = len(env.standin.access_reviews)
    a = srv.request("GET", flunders("imp-c7"), headers=[("Authorization", "Bearer tok-alice"),
                                                        ("Impersonate-Group", "system:masters")])
    assert a.status == 500 and a.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert a.body.decode() == (f'Internal Server Error: "{flunders("imp-c7")}": requested [{{Group  system:masters'
                               '    }] without impersonating a user\n')
    assert reviews_since(env, n) == []


def test_front_proxy_identity_is_not_impersonated_again(env, cluster):
    """Behind the aggregator the main apiserver applied impersonation, deleted the
    ``Impersonate-*`` headers and forwards the result as ``X-Remote-*``: that identity is
    the request's, with no ``impersonate`` review."""
    srv, _ = cluster
    n = len(env.standin.access_reviews)
    a = srv.request("GET", flunders("imp-c8"), cert=env.proxy,
                    headers=[("X-Remote-User", "front-bob"), ("X-Remote-Group", "devs")])
    assert a.status == 200
    assert reviews_since(env, n) == [{"user": "front-bob", "groups": ["devs", AUTHENTICATED], "resourceAttributes": {
        "namespace": "imp-c8", "verb": "list", "group": G, "version": V, "resource": "flunders"}}]


def test_impersonation_headers_on_a_front_proxy_request_are_authorized_for_the_proxied_identity(env, cluster):
    """As a Go aggregated server: ``Impersonate-*`` headers the main apiserver did not
    consume (it deletes those it applies) are a new request to impersonate, by the
    front-proxy identity, reviewed as such."""
    srv, _ = cluster
    n = len(env.standin.access_reviews)
    a = srv.request("GET", flunders("imp-c9"), cert=env.proxy,
                    headers=[("X-Remote-User", "front-carl"), ("Impersonate-User", "root"),
                             ("Impersonate-Group", "system:masters")])
    assert a.status == 403
    assert a.json()["message"] == ('users "root" is forbidden: User "front-carl" cannot impersonate resource '
                                   '"users" in API group "" at the cluster scope')
    assert reviews_since(env, n) == [{"user": "front-carl", "groups": [AUTHENTICATED], "resourceAttributes":
                                      impersonate(version="v1", resource="users", name="root")}]
    # allowed for that identity: applied once, the request runs as the impersonated user
    n = len(env.standin.access_reviews)
    a = srv.request("GET", flunders("imp-c9"), cert=env.proxy,
                    headers=[("X-Remote-User", "front-bob"), ("Impersonate-User", "bob")])
    assert a.status == 200
    assert reviews_since(env, n) == [
        {"user": "front-bob", "groups": [AUTHENTICATED],
         "resourceAttributes": impersonate(version="v1", resource="users", name="bob")},
        {"user": "bob", "groups": [AUTHENTICATED], "resourceAttributes": {
            "namespace": "imp-c9", "verb": "list", "group": G, "version": V, "resource": "flunders"}}]
