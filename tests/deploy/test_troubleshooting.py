"""docs/deploy.md's troubleshooting table, row by row, against the real server.

Each row names the line the server logs for a usual aggregated-server failure. Here each
failure is made for real (the server in cluster mode, delegating to the kube-apiserver
TEST stand-in, which plays the cluster: its authentication ConfigMap, its TokenReview and
SubjectAccessReview answers) and the server's output must contain the documented line.
"""
from __future__ import annotations

import re
import socket
import ssl
import time

import pytest

from extserver.server import certs
from tests.e2e.cluster_harness import CM, ClusterEnv, ClusterServer, authentication_configmap

from .conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "deploy.md"
DISCOVERY = "/apis/wardle.example.com/v1beta1"
SA = "system:serviceaccount:wardle:wardle-extserver"


def table_rows() -> list[list[str]]:
    """Rows of the first table under "## Troubleshooting": [symptom, cause, log, fix]."""
    section = DOC.read_text().split("## Troubleshooting", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in row.strip().strip("|").split(" | ")] for row in rows]
    assert cells[0][:3] == ["symptom", "cause", "the server logs"]
    return [c for c in cells[1:] if not set(c[0]) <= {"-", " "}]


def documented_line(row: list[str]) -> re.Pattern[str]:
    """The first `...` of the log column; "..." in it stands for any text."""
    match = re.search(r"`([^`]+)`", row[2])
    assert match, f"no log line in the row {row[1]!r}"
    return re.compile(".*".join(re.escape(part) for part in match.group(1).split("...")))


def _no_front_proxy_ca(env: ClusterEnv) -> None:
    """Before the server starts: the cluster publishes no front-proxy CA."""
    data = authentication_configmap(env.front_proxy_ca, env.client_ca)
    del data["requestheader-client-ca-file"]
    env.standin.set_configmap(CM, data)


def _front_proxy_ca_missing(env: ClusterEnv, server: ClusterServer) -> None:
    assert any("0 request-header CA(s)" in line for line in server.output)
    with pytest.raises((ConnectionError, ssl.SSLError)):  # refused at the handshake (the doc says why)
        server.request("GET", DISCOVERY, cert=env.proxy, headers=[("X-Remote-User", "alice")])


def _allowed_names(env: ClusterEnv, server: ClusterServer) -> None:
    env.standin.set_configmap(CM, authentication_configmap(env.front_proxy_ca, env.client_ca,
                                                           allowed_names=["someone-else"]))
    deadline = time.monotonic() + 15
    while True:  # until the changed ConfigMap reached the server (bounded)
        answer = server.request("GET", DISCOVERY, cert=env.proxy, headers=[("X-Remote-User", "alice")])
        if answer.status != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert answer.status == 401 and answer.json()["reason"] == "Unauthorized"


def _wrong_ca_bundle(env: ClusterEnv, server: ClusterServer) -> None:
    """The aggregator verifying the server against a CA that did not sign its certificate."""
    context = ssl.create_default_context(cadata=certs.new_ca("not-the-serving-ca").cert_pem.decode())
    host, port = server.url.removeprefix("https://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(sock, server_hostname="localhost")


def _no_auth_delegator_sar(env: ClusterEnv, server: ClusterServer) -> None:
    env.standin.sar_error = (403, "Forbidden", f'subjectaccessreviews.authorization.k8s.io is forbidden: User "{SA}" '
                             'cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" '
                             "at the cluster scope")
    answer = server.request("GET", DISCOVERY, cert=env.proxy, headers=[("X-Remote-User", "alice")])
    assert answer.status == 500 and answer.json()["reason"] == "InternalError"


def _no_auth_delegator_tokenreview(env: ClusterEnv, server: ClusterServer) -> None:
    env.standin.add_token("t0ken", "bob")
    env.standin.token_error = (403, "Forbidden", f'tokenreviews.authentication.k8s.io is forbidden: User "{SA}" '
                               'cannot create resource "tokenreviews" in API group "authentication.k8s.io" '
                               "at the cluster scope")
    answer = server.request("GET", DISCOVERY, headers=[("Authorization", "Bearer t0ken")])
    assert answer.status == 401


#: cause column (a phrase of it) -> how to make that failure.
SCENARIOS = {
    "front-proxy CA not configured": _front_proxy_ca_missing,
    "not in `requestheader-allowed-names`": _allowed_names,
    "wrong `caBundle`": _wrong_ca_bundle,
    "delegated authorization missing": _no_auth_delegator_sar,
    "delegated authentication missing": _no_auth_delegator_tokenreview,
}
#: what a scenario changes before the server starts
PREPARE = {"front-proxy CA not configured": _no_front_proxy_ca}
#: rows no test can make here, and why.
NOT_REPRODUCED = {
    "cannot reach the Service": "no request reaches the server, so there is nothing it could log",
    "read the authentication ConfigMap": "the stand-in serves its ConfigMap to every caller: it cannot refuse the read",
}


def test_every_row_is_reproduced_or_says_why_not():
    for row in table_rows():
        matches = [key for key in [*SCENARIOS, *NOT_REPRODUCED] if key in row[1]]
        assert len(matches) == 1, f"row {row[1]!r} matches {matches}"


@pytest.mark.parametrize("cause", list(SCENARIOS))
def test_the_server_logs_the_documented_line(cause):
    [row] = [r for r in table_rows() if cause in r[1]]
    pattern = documented_line(row)
    env = ClusterEnv()
    env.standin.allow_users("alice")
    if cause in PREPARE:
        PREPARE[cause](env)
    server = ClusterServer(env).start()
    try:
        before = len(server.output)
        SCENARIOS[cause](env, server)
        deadline = time.monotonic() + 10
        while not any(pattern.search(line) for line in server.output[before:]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(pattern.search(line) for line in server.output[before:]), \
            f"expected /{pattern.pattern}/ in:\n" + "".join(server.output[before:])
    finally:
        server.close()
        env.close()
