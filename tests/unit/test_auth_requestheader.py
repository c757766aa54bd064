"""Request-header (front-proxy) parsing and the certificate gate in front of it; x509
client-certificate identities."""
from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from extserver.auth.requestheader import (RequestHeaderAuthenticator, RequestHeaderConfig, strip_auth_headers,
                                          user_from_headers)
from extserver.auth.user import AUTHENTICATED, CREDENTIAL_ID_KEY, UNAUTHENTICATED, UserInfo
from extserver.auth.x509 import X509Authenticator
from extserver.server import certs
from tests.standin import pki


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


CFG = RequestHeaderConfig(username_headers=("X-Remote-User", "X-Other-User"), uid_headers=("X-Remote-Uid",),
                          group_headers=("X-Remote-Group", "X-Other-Group"),
                          extra_prefixes=("X-Remote-Extra-", "X-Other-Extra-"))


def test_identity_from_headers():
    u = user_from_headers(headers(
        ("X-Remote-User", ""), ("x-other-user", "alice"), ("X-Remote-Uid", "u-1"),
        ("X-Remote-Group", "g1"), ("X-Remote-Group", ""), ("X-Other-Group", "g3"), ("x-remote-group", "g2"),
        ("X-Remote-Extra-Scopes", "a"), ("X-Remote-Extra-scopes", "b"),
        ("X-Remote-Extra-Acme.com%2FProject", "p"), ("X-Other-Extra-Bad%zzKey", "v"),
        ("X-Unrelated", "x")), CFG)
    assert u == UserInfo("alice", "u-1", ("g1", "g2", "g3"),
                         (("scopes", ("a", "b")), ("acme.com/project", ("p",)), ("bad%zzkey", ("v",))))


def test_first_non_empty_username_header_wins():
    u = user_from_headers(headers(("X-Other-User", "second"), ("X-Remote-User", "first")), CFG)
    assert u is not None and u.name == "first"


def test_no_username_is_no_identity():
    assert user_from_headers(headers(("X-Remote-Group", "system:masters")), CFG) is None


def test_strip_auth_headers():
    h = headers(("Authorization", "Bearer t"), ("X-Remote-User", "a"), ("x-remote-whatever", "b"),
                ("X-Other-User", "c"), ("X-Other-Extra-K", "d"), ("Accept", "application/json"),
                ("X-Request-Id", "r"))
    out = strip_auth_headers(h, CFG)
    assert list(out.items()) == [("Accept", "application/json"), ("X-Request-Id", "r")]
    # without a request-header config, Authorization and X-Remote-* still go
    assert list(strip_auth_headers(h, None).keys()) == ["X-Other-User", "X-Other-Extra-K", "Accept", "X-Request-Id"]


@pytest.fixture(scope="module")
def pkis(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    front_proxy_ca, client_ca = certs.new_ca("front-proxy-ca"), certs.new_ca("client-ca")
    return d, front_proxy_ca, client_ca


def test_front_proxy_gate(pkis):
    d, fp_ca, client_ca = pkis
    gate = RequestHeaderAuthenticator(RequestHeaderConfig(cas=(fp_ca.cert,), allowed_names=("front-proxy-client",)))
    good = pki.client_cert(d, "fp", fp_ca, "front-proxy-client")
    assert gate.check(good.der) == (True, None)
    ok, err = gate.check(pki.client_cert(d, "fp-bad-cn", fp_ca, "someone-else").der)
    assert not ok and err == "x509: subject with cn=someone-else is not in the allowed list"
    ok, err = gate.check(pki.client_cert(d, "client", client_ca, "front-proxy-client").der)
    assert not ok and "unknown authority" in err
    ok, err = gate.check(pki.forged_self_signed(d, "forged", fp_ca).der)
    assert not ok and "unknown authority" in err
    ok, err = gate.check(pki.leaf_of_forged_ca(d, "forged-leaf", fp_ca, "front-proxy-client").der)
    assert not ok and "unknown authority" in err
    ok, err = gate.check(pki.client_cert(d, "server-only", fp_ca, "front-proxy-client", server_only=True).der)
    assert not ok and "key usage" in err
    assert gate.check(None) == (False, None)  # no certificate: no opinion
    # no allowed names: any CN of the CA
    assert RequestHeaderAuthenticator(RequestHeaderConfig(cas=(fp_ca.cert,))).check(
        pki.client_cert(d, "any", fp_ca, "anyone").der) == (True, None)
    # no CA configured: no opinion, never an identity
    assert RequestHeaderAuthenticator(RequestHeaderConfig()).check(good.der) == (False, None)


def test_front_proxy_identity_only_through_the_gate(pkis):
    d, fp_ca, client_ca = pkis
    gate = RequestHeaderAuthenticator(RequestHeaderConfig(cas=(fp_ca.cert,)))
    h = headers(("X-Remote-User", "admin"), ("X-Remote-Group", "system:masters"))
    user, err = gate.authenticate(pki.client_cert(d, "c2", client_ca, "bob").der, h)
    assert user is None and err
    user, err = gate.authenticate(pki.client_cert(d, "fp2", fp_ca, "proxy").der, h)
    assert user == UserInfo("admin", groups=("system:masters",)) and err is None


def test_x509_identity(pkis):
    d, fp_ca, client_ca = pkis
    a = X509Authenticator([client_ca.cert])
    c = pki.client_cert(d, "carol", client_ca, "carol", ["devs", "ops"])
    user, err = a.check_der(c.der)
    import hashlib
    assert err is None and user == UserInfo("carol", groups=("devs", "ops"), extra=(
        (CREDENTIAL_ID_KEY, (f"X509SHA256={hashlib.sha256(c.der).hexdigest()}",)),))
    user, err = a.check_der(pki.client_cert(d, "fp3", fp_ca, "carol").der)
    assert user is None and "unknown authority" in err
    assert a.check_der(None) == (None, None)
    a.set_cas([fp_ca.cert])  # a CA change applies at once (cached verdicts dropped)
    assert a.check_der(c.der)[0] is None


def test_authenticated_group():
    assert UserInfo("u", groups=("g",)).with_authenticated_group().groups == ("g", AUTHENTICATED)
    assert UserInfo("u", groups=(AUTHENTICATED, "g")).with_authenticated_group().groups == (AUTHENTICATED, "g")
    assert UserInfo("u", groups=(UNAUTHENTICATED,)).with_authenticated_group().groups == (UNAUTHENTICATED,)
    assert UserInfo("system:anonymous").with_authenticated_group().groups == ()

