"""ClusterAuth (cluster-mode authentication and authorization) against the kube-apiserver
test stand-in: the authentication chain, TokenReview and SubjectAccessReview with their
caches, the extension-apiserver-authentication ConfigMap applied live, CA files re-read."""
from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from extserver.auth.delegating import ClusterAuth, build_cluster_auth
from extserver.auth.subjectaccessreview import SubjectAccessReviewAuthorizer
from extserver.auth.user import AUTHENTICATED, UserInfo
from extserver.cli import FlagError, build_parser
from extserver.filters.requestinfo import parse_request_info
from extserver.machinery import errors as E
from extserver.server import certs
from tests.standin import pki
from tests.standin.kube_apiserver_standin import CALLER_CN, KubeAPIServerStandin

CM = "extension-apiserver-authentication"
DER = web.RequestKey("der", object)
FL = "/apis/wardle.example.com/v1alpha1/namespaces/ns1/flunders"


class FakeTLS:
    """Records what the auth layer asks the TLS layer to trust."""

    def __init__(self) -> None:
        self.bundles: list[bytes] = []

    def set_client_cas(self, pem: bytes) -> None:
        self.bundles.append(pem)


@pytest.fixture(scope="module")
def env():
    d = Path(tempfile.mkdtemp(prefix="auth-unit-"))
    st = KubeAPIServerStandin(d / "standin").start()
    cas = {n: certs.new_ca(n) for n in ("front-proxy-ca", "front-proxy-ca-2", "client-ca")}
    yield d, st, cas
    st.stop()
    shutil.rmtree(d, ignore_errors=True)


def args(*extra: str):
    return build_parser().parse_args(["serve", *extra])


def request(path: str = FL, method: str = "GET", der: bytes | None = None, hdrs=()):
    req = make_mocked_request(method, path, headers=list(hdrs))
    req[DER] = der
    return req


def peer(req) -> bytes | None:
    return req.get(DER)


async def cluster_auth(st: KubeAPIServerStandin, d: Path, *flags: str, tls=None) -> ClusterAuth:
    kc = st.write_kubeconfig(d / "kubeconfig")
    auth = await build_cluster_auth(args("--authentication-kubeconfig", str(kc), "--authorization-kubeconfig",
                                         str(kc), *flags), tls or FakeTLS(), peer_der=peer)
    await auth.start()
    return auth


def cm_data(ca, allowed=("front-proxy-client",), client_ca=None) -> dict[str, str]:
    import json
    d = {"requestheader-client-ca-file": ca.cert_pem.decode(),
         "requestheader-allowed-names": json.dumps(list(allowed)),
         "requestheader-username-headers": '["X-Remote-User"]',
         "requestheader-group-headers": '["X-Remote-Group"]',
         "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]'}
    if client_ca is not None:
        d["client-ca-file"] = client_ca.cert_pem.decode()
    return d


SPOOF = (("X-Remote-User", "admin"), ("X-Remote-Group", "system:masters"))


async def test_authentication_chain(env):
    d, st, cas = env
    st.set_configmap(CM, cm_data(cas["front-proxy-ca"], client_ca=cas["client-ca"]))
    tls = FakeTLS()
    auth = await cluster_auth(st, d, tls=tls)
    try:
        assert auth.healthy() == (True, "")
        assert auth.anonymous_auth is True
        # the TLS layer was told to trust both CAs
        assert tls.bundles[-1] == cas["front-proxy-ca"].cert_pem + cas["client-ca"].cert_pem
        assert auth.client_cas_pem() == tls.bundles[-1]
        proxy = pki.client_cert(d, "proxy", cas["front-proxy-ca"], "front-proxy-client")
        u = await auth.authenticate(request(der=proxy.der, hdrs=[
            ("X-Remote-User", "u"), ("X-Remote-Group", "g1"), ("X-Remote-Group", "g2"),
            ("X-Remote-Extra-Scopes", "s1"), ("X-Remote-Extra-Scopes", "s2")]))
        assert u == UserInfo("u", groups=("g1", "g2", AUTHENTICATED), extra=(("scopes", ("s1", "s2")),))
        # spoofed headers: no certificate -> anonymous (None)
        assert await auth.authenticate(request(hdrs=SPOOF)) is None
        # a client-CA certificate: its own CN, never the headers
        carol = pki.client_cert(d, "carol", cas["client-ca"], "carol", ["devs"])
        u = await auth.authenticate(request(der=carol.der, hdrs=SPOOF))
        assert u is not None and (u.name, u.groups) == ("carol", ("devs", AUTHENTICATED))
        # a front-proxy certificate whose CN is not allowed: 401, as kube
        with pytest.raises(E.Unauthorized):
            await auth.authenticate(request(der=pki.client_cert(d, "evil", cas["front-proxy-ca"], "evil").der,
                                            hdrs=SPOOF))
        # a forgery copying the front-proxy CA's subject: 401
        with pytest.raises(E.Unauthorized):
            await auth.authenticate(request(der=pki.forged_self_signed(d, "forged", cas["front-proxy-ca"]).der,
                                            hdrs=SPOOF))
        # a front-proxy certificate without a username header: no identity from the headers, and
        # as a plain client certificate it is not from the client CA: 401 (kube's union)
        with pytest.raises(E.Unauthorized):
            await auth.authenticate(request(der=proxy.der, hdrs=[("X-Remote-Group", "system:masters")]))
    finally:
        await auth.stop()


async def test_credentials_are_stripped(env):
    d, st, cas = env
    auth = await cluster_auth(st, d)
    try:
        req = request(hdrs=[("Authorization", "Bearer x"), ("X-Remote-User", "a"), ("X-Remote-Extra-K", "v"),
                            ("X-Remote-Anything", "z"), ("Accept", "application/json")])
        clean = auth.strip_credentials(req)
        assert dict(clean.headers) == {"Accept": "application/json"}
        assert clean[DER] is None and clean.path == req.path and clean.method == "GET"
        plain = request(hdrs=[("Accept", "application/json")])
        assert auth.strip_credentials(plain) is plain  # nothing to remove: no copy
    finally:
        await auth.stop()


async def test_bearer_tokens_reviewed_and_cached(env):
    d, st, cas = env
    st.add_token("tok-bob", "bob", uid="b-1", groups=["devs"], extra={"k": ["v"]})
    auth = await cluster_auth(st, d)
    try:
        before = len(st.token_reviews)
        for _ in range(3):
            u = await auth.authenticate(request(hdrs=[("Authorization", "Bearer tok-bob")]))
            assert u == UserInfo("bob", "b-1", ("devs", AUTHENTICATED), (("k", ("v",)),))
        reviews = st.token_reviews[before:]
        assert len(reviews) == 1  # cached
        assert reviews[0].body == {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                   "metadata": {}, "spec": {"token": "tok-bob"}}
        assert reviews[0].caller == CALLER_CN
        # the cache never holds the raw token
        assert all("tok-bob" not in str(k) for k in auth.tokens.cache._data)
        # a token the apiserver rejects: 401, and the rejection is cached too
        for _ in range(2):
            with pytest.raises(E.Unauthorized):
                await auth.authenticate(request(hdrs=[("Authorization", "Bearer nope")]))
        assert len(st.token_reviews) == before + 2
        # a review that fails (the apiserver refuses the caller): 401, not cached
        st.token_error = (403, "Forbidden", "tokenreviews.authentication.k8s.io is forbidden")
        try:
            for _ in range(2):
                with pytest.raises(E.Unauthorized):
                    await auth.authenticate(request(hdrs=[("Authorization", "Bearer other")]))
            assert len(st.token_reviews) == before + 4
        finally:
            st.token_error = None
        assert "authentication_token_cache_request_total{status=\"hit\"} 3" in auth.render_metrics()
    finally:
        await auth.stop()


async def test_anonymous_disabled_is_401_for_nobody(env):
    d, st, cas = env
    auth = await cluster_auth(st, d, "--anonymous-auth=false")
    assert auth.anonymous_auth is False
    await auth.stop()


async def test_subject_access_reviews(env):
    d, st, cas = env
    st.allow_users("u")
    auth = await cluster_auth(st, d)
    try:
        user = UserInfo("u", "uid-1", ("g1", AUTHENTICATED), (("scopes", ("a", "b")),))
        info = parse_request_info("GET", FL + "/x/status", {})
        before = len(st.access_reviews)
        assert await auth.authorize(user, info) == (True, "")
        assert await auth.authorize(user, info) == (True, "")
        got = st.access_reviews[before:]
        assert len(got) == 1
        assert got[0].body == {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                               "metadata": {}, "spec": {
                                   "user": "u", "uid": "uid-1", "groups": ["g1", AUTHENTICATED],
                                   "extra": {"scopes": ["a", "b"]},
                                   "resourceAttributes": {"namespace": "ns1", "verb": "get",
                                                          "group": "wardle.example.com", "version": "v1alpha1",
                                                          "resource": "flunders", "subresource": "status",
                                                          "name": "x"}}}
        # non-resource request: path + lower-case method
        await auth.authorize(user, parse_request_info("GET", "/openapi/v2", {}))
        assert st.access_reviews[-1].spec["nonResourceAttributes"] == {"path": "/openapi/v2", "verb": "get"}
        # denied (and the denial cached)
        n = len(st.access_reviews)
        mallory = UserInfo("mallory", groups=(AUTHENTICATED,))
        assert await auth.authorize(mallory, info) == (False, "")
        assert await auth.authorize(mallory, info) == (False, "")
        assert len(st.access_reviews) == n + 1
        # always-allow groups and paths: no review
        assert await auth.authorize(UserInfo("root", groups=("system:masters",)), info) == (True, "")
        assert await auth.authorize(mallory, parse_request_info("GET", "/healthz", {})) == (True, "")
        assert len(st.access_reviews) == n + 1
        # /healthz/etcd is not /healthz (kube: exact paths unless the entry ends in *)
        assert await auth.authorize(mallory, parse_request_info("GET", "/healthz/etcd", {})) == (False, "")
        # the review itself fails: a 500, as kube's authorization filter answers an authorizer error
        st.sar_error = (403, "Forbidden", 'subjectaccessreviews.authorization.k8s.io is forbidden: User '
                                          f'"{CALLER_CN}" cannot create resource "subjectaccessreviews"')
        try:
            with pytest.raises(E.StatusError) as ei:
                await auth.authorize(UserInfo("newcomer"), info)
            assert ei.value.code == 500 and ei.value.message.startswith(
                f'Internal Server Error: "{FL}/x/status": subjectaccessreviews.authorization.k8s.io is forbidden')
        finally:
            st.sar_error = None
    finally:
        await auth.stop()


async def test_review_reason_is_returned(env):
    d, st, cas = env
    st.sar_policy = lambda spec: {"allowed": False, "denied": True, "reason": "no way"}
    auth = await cluster_auth(st, d)
    try:
        assert await auth.authorize(UserInfo("z"), parse_request_info("GET", FL, {})) == (False, "no way")
    finally:
        st.sar_policy = st._default_policy
        await auth.stop()


async def test_sar_cache_ttls(env):
    """Allow and deny entries expire after their own TTL (fake clock)."""
    d, st, cas = env
    st.allow_users("ttl-ok")
    from extserver.auth.kubeclient import KubeClient
    client = await KubeClient.load(str(st.write_kubeconfig(d / "kc-ttl")))
    now = [0.0]
    az = SubjectAccessReviewAuthorizer(client, allow_ttl=5, deny_ttl=2, clock=lambda: now[0])
    info = parse_request_info("GET", FL, {})
    try:
        n = len(st.access_reviews)
        ok, no = UserInfo("ttl-ok"), UserInfo("ttl-no")
        assert (await az.authorize(ok, info)).allowed and not (await az.authorize(no, info)).allowed
        now[0] = 1.9
        await az.authorize(ok, info), await az.authorize(no, info)
        assert len(st.access_reviews) == n + 2
        now[0] = 2.1  # deny entry expired, allow entry not
        await az.authorize(ok, info), await az.authorize(no, info)
        assert [r.spec["user"] for r in st.access_reviews[n:]] == ["ttl-ok", "ttl-no", "ttl-no"]
        now[0] = 5.1
        await az.authorize(ok, info)
        assert [r.spec["user"] for r in st.access_reviews[n + 3:]] == ["ttl-ok"]
    finally:
        await client.close()


async def wait_for(pred, what: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_configmap_changes_apply_live(env):
    d, st, cas = env
    st.set_configmap(CM, cm_data(cas["front-proxy-ca"]))
    tls = FakeTLS()
    auth = await cluster_auth(st, d, tls=tls)
    one = pki.client_cert(d, "p1", cas["front-proxy-ca"], "front-proxy-client")
    two = pki.client_cert(d, "p2", cas["front-proxy-ca-2"], "front-proxy-client")
    hdrs = [("X-Remote-User", "u")]
    try:
        assert (await auth.authenticate(request(der=one.der, hdrs=hdrs))).name == "u"
        with pytest.raises(E.Unauthorized):
            await auth.authenticate(request(der=two.der, hdrs=hdrs))
        # rotate the request-header CA in the ConfigMap
        st.set_configmap(CM, cm_data(cas["front-proxy-ca-2"], allowed=("front-proxy-client", "other-proxy")))
        await wait_for(lambda: tls.bundles[-1] == cas["front-proxy-ca-2"].cert_pem, "the new CA bundle")
        assert (await auth.authenticate(request(der=two.der, hdrs=hdrs))).name == "u"
        with pytest.raises(E.Unauthorized):
            await auth.authenticate(request(der=one.der, hdrs=hdrs))
        assert (await auth.authenticate(request(
            der=pki.client_cert(d, "p3", cas["front-proxy-ca-2"], "other-proxy").der, hdrs=hdrs))).name == "u"
        # a broken update keeps the last good values; a deleted ConfigMap too
        n = len(tls.bundles)
        bad = cm_data(cas["front-proxy-ca"])
        bad["requestheader-client-ca-file"] = "garbage"
        bad["requestheader-allowed-names"] = "{not json"
        st.set_configmap(CM, bad)
        st.set_configmap(CM, None)
        st.set_configmap("unrelated", {"x": "y"})
        await wait_for(lambda: auth.config.configmap.resource_version and st.open_watches("configmaps"), "watch")
        assert (await auth.authenticate(request(der=two.der, hdrs=hdrs))).name == "u"
        assert len(tls.bundles) == n
    finally:
        await auth.stop()


async def test_ca_files_are_reread(env, tmp_path):
    d, st, cas = env
    ca_file = tmp_path / "client-ca.crt"
    ca_file.write_bytes(cas["client-ca"].cert_pem)
    tls = FakeTLS()
    auth = await cluster_auth(st, d, "--client-ca-file", str(ca_file), "--authentication-skip-lookup", tls=tls)
    try:
        assert auth.config.configmap is None
        alice1 = pki.client_cert(d, "a1", cas["client-ca"], "alice")
        alice2 = pki.client_cert(d, "a2", cas["front-proxy-ca-2"], "alice")
        assert (await auth.authenticate(request(der=alice1.der))).name == "alice"
        tmp = tmp_path / "new.crt"
        tmp.write_bytes(cas["front-proxy-ca-2"].cert_pem)
        tmp.replace(ca_file)
        await wait_for(lambda: tls.bundles[-1] == cas["front-proxy-ca-2"].cert_pem, "the re-read CA file")
        assert (await auth.authenticate(request(der=alice2.der))).name == "alice"
        with pytest.raises(E.Unauthorized):
            await auth.authenticate(request(der=alice1.der))
        ca_file.write_bytes(b"not a certificate")  # a broken file keeps the previous bundle
        await asyncio.sleep(auth.config.POLL_SECONDS * 2.5)
        assert (await auth.authenticate(request(der=alice2.der))).name == "alice"
    finally:
        await auth.stop()


async def test_configuration_errors(env, tmp_path):
    d, st, cas = env
    kc = st.write_kubeconfig(d / "kc-errors")
    with pytest.raises(FlagError, match="--authorization-mode=Delegated needs --authorization-kubeconfig"):
        await build_cluster_auth(args("--authentication-kubeconfig", str(kc)), FakeTLS(), peer_der=peer)
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    with pytest.raises(FlagError, match="--authentication-kubeconfig"):
        await build_cluster_auth(args("--authentication-kubeconfig", str(bad), "--authorization-mode",
                                      "AlwaysAllow"), FakeTLS(), peer_der=peer)
    empty = tmp_path / "empty.crt"
    empty.write_text("")
    with pytest.raises(FlagError, match="missing content for CA bundle"):
        await build_cluster_auth(args("--client-ca-file", str(empty), "--authorization-mode", "AlwaysAllow"),
                                 FakeTLS(), peer_der=peer)
    with pytest.raises(FlagError, match="only trailing"):
        await build_cluster_auth(args("--authorization-always-allow-paths", "/a*b", "--authorization-mode",
                                      "AlwaysAllow", "--anonymous-auth"), FakeTLS(), peer_der=peer)
    # AlwaysAllow without any apiserver: certificates only
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(cas["client-ca"].cert_pem)
    auth = await build_cluster_auth(args("--client-ca-file", str(ca_file), "--authorization-mode", "AlwaysAllow"),
                                    FakeTLS(), peer_der=peer)
    assert auth.tokens is None and auth.reviews is None
    assert await auth.authorize(UserInfo("x"), parse_request_info("DELETE", FL, {})) == (True, "")
    await auth.stop()
