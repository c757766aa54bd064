"""Cluster-mode authentication and authorization of the real ``extserver serve`` process over
HTTPS, delegated to the kube-apiserver TEST stand-in: header spoofing never works, the
front-proxy identity reaches the SubjectAccessReview exactly, reviews are cached, denials
are kube's 403, bearer tokens go through a cached TokenReview, anonymous requests are
reviewed as ``system:anonymous``."""
from __future__ import annotations

import ssl

import pytest

from tests.e2e.cluster_harness import ClusterEnv, ClusterServer
from tests.standin import pki

G, V = "wardle.example.com", "v1beta1"
AUTHENTICATED, ANONYMOUS, UNAUTHENTICATED = "system:authenticated", "system:anonymous", "system:unauthenticated"
SPOOF = [("X-Remote-User", "admin"), ("X-Remote-Group", "system:masters"), ("X-Remote-Extra-Scopes", "all")]


def flunders(ns: str, name: str = "") -> str:
    return f"/apis/{G}/{V}/namespaces/{ns}/flunders" + (f"/{name}" if name else "")


@pytest.fixture(scope="module")
def env():
    e = ClusterEnv()
    e.standin.allow_users("u", "tina", "admin")  # "admin" is allowed: a spoof that worked would show
    yield e
    e.close()


@pytest.fixture(scope="module")
def server(env):
    srv = ClusterServer(env).start()
    yield srv
    srv.close()


def reviews_since(env: ClusterEnv, n: int) -> list[dict]:
    return [r.spec for r in env.standin.access_reviews[n:]]


def forbidden(message: str, name: str = "", kind: str = "flunders", group: str = G) -> dict:
    details = {"name": name, "group": group, "kind": kind} if name else {"group": group, "kind": kind}
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": "Forbidden", "details": details, "code": 403}


# --- header spoofing never works ---------------------------------------------------------
def test_spoofed_headers_without_certificate_are_anonymous(env, server):
    n = len(env.standin.access_reviews)
    a = server.request("GET", flunders("spoof-1"), headers=SPOOF)
    assert a.status == 403
    assert a.json() == forbidden('flunders.wardle.example.com is forbidden: User "system:anonymous" cannot list '
                                 'resource "flunders" in API group "wardle.example.com" in the namespace "spoof-1"')
    assert reviews_since(env, n) == [{"user": ANONYMOUS, "groups": [UNAUTHENTICATED], "resourceAttributes": {
        "namespace": "spoof-1", "verb": "list", "group": G, "version": V, "resource": "flunders"}}]


def test_spoofed_headers_with_a_client_ca_certificate_are_that_certificate(env, server):
    carol = env.cert("carol", env.client_ca, "carol", ["devs"])
    n = len(env.standin.access_reviews)
    a = server.request("GET", flunders("spoof-2", "x"), cert=carol, headers=SPOOF)
    assert a.status == 403
    assert a.json()["message"] == ('flunders.wardle.example.com "x" is forbidden: User "carol" cannot get resource '
                                   '"flunders" in API group "wardle.example.com" in the namespace "spoof-2"')
    [spec] = reviews_since(env, n)
    assert (spec["user"], spec["groups"]) == ("carol", ["devs", AUTHENTICATED])
    assert list(spec["extra"]) == ["authentication.kubernetes.io/credential-id"]  # no X-Remote-Extra


def test_spoofed_headers_with_a_front_proxy_certificate_of_another_name_are_refused(env, server):
    other = env.cert("not-the-proxy", env.front_proxy_ca, "some-other-client")
    n = len(env.standin.access_reviews)
    a = server.request("GET", flunders("spoof-3"), cert=other, headers=SPOOF)
    assert a.status == 401  # kube: a certificate that fails verification is an authentication error
    assert a.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    assert reviews_since(env, n) == []


@pytest.mark.parametrize("forgery", ["self-signed-copy-of-ca", "leaf-of-forged-ca"])
def test_spoofed_headers_with_a_forged_front_proxy_certificate_are_refused(env, server, forgery):
    if forgery == "self-signed-copy-of-ca":
        cert = pki.forged_self_signed(env.dir, forgery, env.front_proxy_ca)
    else:
        cert = pki.leaf_of_forged_ca(env.dir, forgery, env.front_proxy_ca, "front-proxy-client")
    n = len(env.standin.access_reviews)
    try:
        a = server.request("GET", flunders("spoof-4"), cert=cert, headers=SPOOF)
    except (ssl.SSLError, ConnectionError):
        a = None  # the TLS layer refused the certificate: never authenticated either
    if a is not None:
        assert a.status in (401, 403) and b"admin" not in a.body
    assert all(spec.get("user") != "admin" for spec in reviews_since(env, n))
    # the server is unharmed
    assert server.request("GET", "/healthz").status == 200


# --- the front-proxy identity, reviewed exactly and cached --------------------------------
def test_front_proxy_identity_reaches_the_review_exactly(env, server):
    hdrs = [("X-Remote-User", "u"), ("X-Remote-Group", "g1"), ("X-Remote-Group", "g2"),
            ("X-Remote-Extra-Scopes", "s1"), ("X-Remote-Extra-Scopes", "s2"),
            ("X-Remote-Extra-Acme.com%2Fproject", "p")]
    n = len(env.standin.access_reviews)
    a = server.request("GET", flunders("team-a", "f1"), cert=env.proxy, headers=hdrs)
    assert a.status == 404 and a.json()["reason"] == "NotFound"  # authorized; the object does not exist
    got = env.standin.access_reviews[n:]
    assert [r.body for r in got] == [{
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "metadata": {},
        "spec": {"user": "u", "groups": ["g1", "g2", AUTHENTICATED],
                 "extra": {"scopes": ["s1", "s2"], "acme.com/project": ["p"]},
                 "resourceAttributes": {"namespace": "team-a", "verb": "get", "group": G, "version": V,
                                        "resource": "flunders", "name": "f1"}}}]
    # the second identical request within the TTL sends no review
    assert server.request("GET", flunders("team-a", "f1"), cert=env.proxy, headers=hdrs).status == 404
    assert len(env.standin.access_reviews) == n + 1
    # a different verb is a different review: create (POST) on the collection
    body = {"apiVersion": f"{G}/{V}", "kind": "Flunder", "metadata": {"name": "f1"}, "spec": {}}
    assert server.request("POST", flunders("team-a"), cert=env.proxy, headers=hdrs, body=body).status == 201
    assert reviews_since(env, n + 1)[0]["resourceAttributes"] == {
        "namespace": "team-a", "verb": "create", "group": G, "version": V, "resource": "flunders"}


def test_denied_user_gets_kubes_403(env, server):
    hdrs = [("X-Remote-User", "mallory"), ("X-Remote-Group", "g1")]
    n = len(env.standin.access_reviews)
    a = server.request("GET", flunders("team-b", "x"), cert=env.proxy, headers=hdrs)
    assert a.status == 403
    assert a.json() == forbidden('flunders.wardle.example.com "x" is forbidden: User "mallory" cannot get resource '
                                 '"flunders" in API group "wardle.example.com" in the namespace "team-b"', name="x")
    a = server.request("DELETE", flunders("team-b"), cert=env.proxy, headers=hdrs)
    assert a.json()["message"] == ('flunders.wardle.example.com is forbidden: User "mallory" cannot deletecollection '
                                   'resource "flunders" in API group "wardle.example.com" in the namespace "team-b"')
    # the denial is cached too
    assert server.request("GET", flunders("team-b", "x"), cert=env.proxy, headers=hdrs).status == 403
    assert [s["resourceAttributes"]["verb"] for s in reviews_since(env, n)] == ["get", "deletecollection"]


def test_system_masters_and_health_paths_skip_the_review(env, server):
    n = len(env.standin.access_reviews)
    a = server.request("GET", flunders("team-c"), cert=env.proxy,
                       headers=[("X-Remote-User", "root"), ("X-Remote-Group", "system:masters")])
    assert a.status == 200 and a.json()["kind"] == "FlunderList"
    for path in ("/healthz", "/livez", "/readyz"):
        assert server.request("GET", path).status == 200
    assert reviews_since(env, n) == []


def test_non_resource_requests_are_reviewed_by_path(env, server):
    n = len(env.standin.access_reviews)
    assert server.request("GET", "/openapi/v2", cert=env.proxy, headers=[("X-Remote-User", "u")]).status == 200
    assert server.request("GET", "/version").status == 403
    specs = reviews_since(env, n)
    assert specs == [{"user": "u", "groups": [AUTHENTICATED], "nonResourceAttributes": {"path": "/openapi/v2",
                                                                                       "verb": "get"}},
                     {"user": ANONYMOUS, "groups": [UNAUTHENTICATED],
                      "nonResourceAttributes": {"path": "/version", "verb": "get"}}]
    assert server.request("GET", "/version").json()["message"] == \
        'forbidden: User "system:anonymous" cannot get path "/version"'


# --- bearer tokens ----------------------------------------------------------------------
def test_bearer_token_reviewed_once_then_cached(env, server):
    env.standin.add_token("tok-tina", "tina", uid="t-1", groups=["qa"])
    t0, s0 = len(env.standin.token_reviews), len(env.standin.access_reviews)
    auth = [("Authorization", "Bearer tok-tina")]
    for _ in range(3):
        a = server.request("GET", flunders("team-d"), headers=auth)
        assert a.status == 200
    assert [r.spec for r in env.standin.token_reviews[t0:]] == [{"token": "tok-tina"}]
    assert reviews_since(env, s0) == [{"user": "tina", "uid": "t-1", "groups": ["qa", AUTHENTICATED],
                                       "resourceAttributes": {"namespace": "team-d", "verb": "list", "group": G,
                                                              "version": V, "resource": "flunders"}}]
    # an unknown token: 401 (never anonymous)
    a = server.request("GET", flunders("team-d"), headers=[("Authorization", "Bearer wrong")])
    assert a.status == 401 and a.json()["reason"] == "Unauthorized"


# --- failures talking to the main apiserver ---------------------------------------------
def test_review_failure_is_an_internal_error(env, server):
    env.standin.sar_error = (403, "Forbidden", 'subjectaccessreviews.authorization.k8s.io is forbidden: User '
                                               '"extserver-delegator" cannot create resource "subjectaccessreviews"')
    try:
        a = server.request("GET", flunders("team-e"), cert=env.proxy, headers=[("X-Remote-User", "fresh-user")])
    finally:
        env.standin.sar_error = None
    assert a.status == 500
    assert a.json()["message"] == (f'Internal Server Error: "{flunders("team-e")}": subjectaccessreviews.'
                                   'authorization.k8s.io is forbidden: User "extserver-delegator" cannot create '
                                   'resource "subjectaccessreviews"')
    # not cached: the next request is reviewed again and allowed
    env.standin.allow_users("fresh-user")
    assert server.request("GET", flunders("team-e"), cert=env.proxy,
                          headers=[("X-Remote-User", "fresh-user")]).status == 200
