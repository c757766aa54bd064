"""Authentication settings change while the real server runs, without a restart: the
request-header CA published in the ``extension-apiserver-authentication`` ConfigMap, and
the request-header CA file given by flag."""
from __future__ import annotations

import ssl
import time

import pytest

from extserver.server import certs
from tests.e2e.cluster_harness import CM, PROXY_CN, ClusterEnv, ClusterServer, authentication_configmap
from tests.standin import pki

FL = "/apis/wardle.example.com/v1beta1/namespaces/live/flunders"
AS_U = [("X-Remote-User", "u"), ("X-Remote-Group", "g1")]


@pytest.fixture
def env():
    e = ClusterEnv()
    e.standin.allow_users("u")
    yield e
    e.close()


def identity(server: ClusterServer, cert: pki.ClientCert) -> str:
    """Who the server took the front-proxy request for: "u", "rejected" (401, or the TLS
    layer refused the certificate) or the HTTP status."""
    try:
        a = server.request("GET", FL, cert=cert, headers=AS_U)
    except (ssl.SSLError, ConnectionError):
        return "rejected"
    if a.status == 401:
        return "rejected"
    return "u" if a.status == 200 else str(a.status)


def eventually(fn, want: str, timeout: float = 20.0) -> str:
    got = ""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.1) + 1):
        got = fn()
        if got == want or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return got


def test_configmap_request_header_ca_rotation(env):
    server = ClusterServer(env).start()
    try:
        old_proxy = env.proxy
        new_ca = certs.new_ca("front-proxy-ca-rotated")
        new_proxy = env.cert("front-proxy-new", new_ca, PROXY_CN)
        assert identity(server, old_proxy) == "u"
        assert identity(server, new_proxy) == "rejected"
        env.standin.set_configmap(CM, authentication_configmap(new_ca, env.client_ca))
        assert eventually(lambda: identity(server, new_proxy), "u") == "u"
        assert identity(server, old_proxy) == "rejected"
        # the allowed names come from the ConfigMap as well
        other = env.cert("front-proxy-other-name", new_ca, "aggregator-2")
        assert identity(server, other) == "rejected"
        env.standin.set_configmap(CM, authentication_configmap(new_ca, env.client_ca, [PROXY_CN, "aggregator-2"]))
        assert eventually(lambda: identity(server, other), "u") == "u"
        assert server.proc is not None and server.proc.poll() is None  # never restarted
    finally:
        server.close()


def test_request_header_ca_file_is_reread(env):
    rh_file = env.dir / "requestheader-ca.crt"
    rh_file.write_bytes(env.front_proxy_ca.cert_pem)
    server = ClusterServer(env, ["--requestheader-client-ca-file", str(rh_file),
                                 "--requestheader-allowed-names", PROXY_CN]).start()
    try:
        new_ca = certs.new_ca("front-proxy-ca-file-rotated")
        new_proxy = env.cert("front-proxy-file-new", new_ca, PROXY_CN)
        assert identity(server, env.proxy) == "u"
        assert identity(server, new_proxy) == "rejected"
        # the ConfigMap is not used for the request header when the flag is given
        env.standin.set_configmap(CM, authentication_configmap(new_ca, env.client_ca))
        time.sleep(1.0)
        assert identity(server, new_proxy) == "rejected"
        tmp = env.dir / "requestheader-ca.tmp"
        tmp.write_bytes(new_ca.cert_pem)
        tmp.replace(rh_file)
        assert eventually(lambda: identity(server, new_proxy), "u") == "u"
        assert identity(server, env.proxy) == "rejected"
    finally:
        server.close()
