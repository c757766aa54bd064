"""Serving certificates (issue 3, item 4) against the real server: the files given with
``--tls-cert-file``/``--tls-private-key-file`` are reloaded when they change (the next
connection sees the new certificate, no restart), ``--tls-min-version``, ALPN ``http/1.1``.
Clients dial ``https://127.0.0.1:<port>``: an IP address, so no SNI is sent."""
from __future__ import annotations

import shutil
import socket
import ssl
import time
from pathlib import Path

import pytest
import requests

from extserver.server import certs
from tests.e2e.harness import API, ServerProcess, new_tmp_dir


class FileCertServer(ServerProcess):
    """A server whose serving certificate comes from files this test writes."""

    def __init__(self, data_dir: Path, ca_file: Path, extra_args: list[str]):
        super().__init__(data_dir, extra_args=extra_args)
        self.ca_file = ca_file

    @property
    def ca(self) -> Path:  # what clients verify the server against
        return self.ca_file


def write_pair(d: Path, name: str, ca: certs.CertKey) -> None:
    leaf = certs.issue(ca, "localhost", dns=["localhost"], ips=["127.0.0.1"], server=True)
    certs.write_private(d / f"{name}.crt", leaf.cert_pem)
    certs.write_private(d / f"{name}.key", leaf.key_pem)


def handshake(srv: ServerProcess, ca: Path, **ctx_opts) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(ca))
    for k, v in ctx_opts.items():
        setattr(ctx, k, v)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def verifies(srv: ServerProcess, ca: Path) -> bool:
    try:
        handshake(srv, ca).close()
        return True
    except ssl.SSLCertVerificationError:
        return False


@pytest.fixture
def tmp() -> Path:
    d = new_tmp_dir("extserver-tls-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def two_serving_cas(d: Path) -> tuple[certs.CertKey, certs.CertKey]:
    """Two serving CAs (``ca1.crt``, ``ca2.crt`` in ``d``) and a serving pair from the first
    (``serving.crt`` / ``serving.key``)."""
    ca1, ca2 = certs.new_ca("serving-ca-one"), certs.new_ca("serving-ca-two")
    (d / "ca1.crt").write_bytes(ca1.cert_pem)
    (d / "ca2.crt").write_bytes(ca2.cert_pem)
    write_pair(d, "serving", ca1)
    return ca1, ca2


def test_replacing_the_serving_cert_files_is_seen_by_the_next_connection(tmp):
    ca1, ca2 = two_serving_cas(tmp)
    srv = FileCertServer(tmp / "data", tmp / "ca1.crt",
                         ["--tls-cert-file", str(tmp / "serving.crt"),
                          "--tls-private-key-file", str(tmp / "serving.key")]).start()
    try:
        api = API(srv)
        assert api.get("/readyz").status_code == 200
        s = handshake(srv, tmp / "ca1.crt")
        assert s.selected_alpn_protocol() == "http/1.1"
        s.close()
        assert not verifies(srv, tmp / "ca2.crt")

        # a rotation caught half-way (the new cert, the old key) does not load: the old pair stays
        new = certs.issue(ca2, "localhost", dns=["localhost"], ips=["127.0.0.1"], server=True)
        certs.write_private(tmp / "serving.crt", new.cert_pem)
        deadline = time.monotonic() + 30
        while not any("does not load yet" in ln for ln in srv.output) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any("does not load yet" in ln for ln in srv.output)
        assert verifies(srv, tmp / "ca1.crt") and api.get("/readyz").status_code == 200

        certs.write_private(tmp / "serving.key", new.key_pem)
        deadline = time.monotonic() + 30
        while not verifies(srv, tmp / "ca2.crt") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert verifies(srv, tmp / "ca2.crt")
        assert not verifies(srv, tmp / "ca1.crt")
        # the same process serves, with the client certificate still verified
        srv.ca_file = tmp / "ca2.crt"
        r = API(srv).get("/apis")
        assert r.status_code == 200 and r.json()["kind"] == "APIGroupList"
        assert API(srv, cert=False).get("/apis").status_code == 401
        assert srv.proc.poll() is None
        assert not any("BEGIN" in ln for ln in srv.output)  # no PEM in the log
    finally:
        srv.stop()


def test_tls_min_version(tmp):
    ca = certs.new_ca("serving-ca")
    (tmp / "ca.crt").write_bytes(ca.cert_pem)
    write_pair(tmp, "serving", ca)
    srv = FileCertServer(tmp / "data", tmp / "ca.crt",
                         ["--tls-cert-file", str(tmp / "serving.crt"), "--tls-private-key-file",
                          str(tmp / "serving.key"), "--tls-min-version", "VersionTLS13"]).start()
    try:
        s = handshake(srv, tmp / "ca.crt")
        assert s.version() == "TLSv1.3"
        s.close()
        with pytest.raises(ssl.SSLError):
            handshake(srv, tmp / "ca.crt", maximum_version=ssl.TLSVersion.TLSv1_2).close()
        assert API(srv).get("/healthz").text == "ok"
    finally:
        srv.stop()


def test_tls12_by_default_and_foreign_client_certs_refused(tmp):
    srv = ServerProcess(tmp / "data").start()
    try:
        s = handshake(srv, srv.ca, maximum_version=ssl.TLSVersion.TLSv1_2)
        assert s.version() == "TLSv1.2"
        s.close()
        # a client certificate from another CA is refused (TLS 1.3: right after the handshake)
        other = certs.new_ca("someone-else")
        leaf = certs.issue(other, "mallory", client=True)
        certs.write_private(tmp / "m.crt", leaf.cert_pem)
        certs.write_private(tmp / "m.key", leaf.key_pem)
        s = requests.Session()
        s.verify, s.cert, s.trust_env = str(srv.ca), (str(tmp / "m.crt"), str(tmp / "m.key")), False
        with pytest.raises(requests.exceptions.ConnectionError):
            s.get(srv.url + "/healthz", timeout=10)
    finally:
        srv.stop()
