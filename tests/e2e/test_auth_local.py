"""Local mode accepts only the admin identity (issue 10, item 5), against the real
``extserver serve`` process: the certificate in ``<data-dir>/admin.crt`` is pinned; any
other certificate its local CA signed -- another CN, or a second ``extserver-admin`` with
``system:masters`` -- is kube's 401; the anonymous user, when explicitly enabled, reaches
only the health paths."""
from __future__ import annotations

import shutil

import pytest
import requests

from extserver.server import certs
from tests.e2e.harness import API, ServerProcess, new_tmp_dir
from tests.standin import pki

FLUNDERS = "/apis/wardle.example.com/v1beta1/namespaces/default/flunders"
UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized",
                "reason": "Unauthorized", "code": 401}


@pytest.fixture(scope="module")
def local():
    srv = ServerProcess(new_tmp_dir("extserver-local-auth-")).start()
    yield srv
    srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


def local_ca(srv: ServerProcess) -> certs.CertKey:
    """The server's own local CA, from its data dir (what an attacker with read access
    to a backup of it would hold)."""
    return certs.load_pair(srv.data_dir / "local-ca.crt", srv.data_dir / "local-ca.key")


def get(srv: ServerProcess, cert: pki.ClientCert | None, path: str = FLUNDERS) -> requests.Response:
    s = srv.session(cert=False)
    if cert is not None:
        s.cert = cert.pair
    return s.get(srv.url + path, headers={"Accept": "application/json"}, timeout=30)


def test_the_admin_certificate_is_accepted(local):
    assert API(local).get(FLUNDERS).status_code == 200


@pytest.mark.parametrize("cn,orgs", [("bob", None), ("mallory", ["system:masters"]),
                                     ("extserver-admin", ["system:masters"])])
def test_another_certificate_of_the_local_ca_is_unauthorized(local, cn, orgs):
    tmp = new_tmp_dir("extserver-local-cert-")
    try:
        other = pki.client_cert(tmp, cn, local_ca(local), cn, orgs)
        r = get(local, other)
        assert r.status_code == 401
        assert r.json() == UNAUTHORIZED
        assert get(local, other, "/apis").status_code == 401  # non-resource paths too
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_no_certificate_is_unauthorized(local):
    r = get(local, None)
    assert r.status_code == 401 and r.json() == UNAUTHORIZED


def test_anonymous_when_enabled_reaches_only_the_health_paths():
    srv = ServerProcess(new_tmp_dir("extserver-local-anon-"), extra_args=["--anonymous-auth=true"]).start()
    try:
        for path in ("/healthz", "/livez", "/readyz"):
            assert get(srv, None, path).status_code == 200
        r = get(srv, None)
        assert r.status_code == 403
        assert r.json()["message"] == ('flunders.wardle.example.com is forbidden: User "system:anonymous" cannot list '
                                       'resource "flunders" in API group "wardle.example.com" in the namespace '
                                       '"default"')
        assert get(srv, None, "/version").json()["message"] == \
            'forbidden: User "system:anonymous" cannot get path "/version"'
        # nor can it become the admin by impersonation
        r = srv.session(cert=False).get(srv.url + FLUNDERS, timeout=30, headers={
            "Accept": "application/json", "Impersonate-User": "extserver-admin", "Impersonate-Group": "system:masters"})
        assert r.status_code == 403
        assert r.json()["message"] == ('users "extserver-admin" is forbidden: User "system:anonymous" cannot '
                                       'impersonate resource "users" in API group "" at the cluster scope')
        assert API(srv).get(FLUNDERS).status_code == 200  # the admin, as always
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)
