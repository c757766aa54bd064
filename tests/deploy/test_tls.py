"""The certificates the chart renders (tls.type=helm and the bundled etcd) really work.

The serving material is checked three ways for the name the kube-aggregator dials
(<service>.<namespace>.svc): cryptography's X.509 path validation against the rendered
APIService caBundle, a TLS handshake with a plain Python ssl server (the material alone),
and a handshake with the real `extserver serve` started with the rendered certificate and
key. The bundled etcd's certificates and flags are checked with the real etcd binary.
"""
from __future__ import annotations

import base64
import datetime
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from .conftest import FULLNAME, NAMESPACE, SERVICE_DNS, find, one, secret_bytes

def _b64_field(obj, path: str) -> bytes:
    node = obj
    for key in path.split("."):
        node = node[key]
    return base64.b64decode(node)


@pytest.fixture(scope="module")
def serving(render) -> dict[str, bytes]:
    """CA bundle (from the APIServices), certificate and key (from the Secret)."""
    objects = render()
    secret = one(objects, "Secret", f"{FULLNAME}-tls")
    bundles = {_b64_field(a, "spec.caBundle") for a in find(objects, "APIService")}
    assert len(bundles) == 1, "every APIService must carry the same caBundle"
    return {"ca_bundle": bundles.pop(), "crt": secret_bytes(secret, "tls.crt"),
            "key": secret_bytes(secret, "tls.key"), "secret_ca": secret_bytes(secret, "ca.crt")}


def _verify(ca_bundle: bytes, leaf_pem: bytes, dns_name: str) -> None:
    store = Store(x509.load_pem_x509_certificates(ca_bundle))
    verifier = PolicyBuilder().store(store).build_server_verifier(x509.DNSName(dns_name))
    verifier.verify(x509.load_pem_x509_certificate(leaf_pem), [])


def test_ca_bundle_verifies_the_serving_certificate_for_the_service_name(serving):
    assert serving["ca_bundle"] == serving["secret_ca"]
    _verify(serving["ca_bundle"], serving["crt"], SERVICE_DNS)
    _verify(serving["ca_bundle"], serving["crt"], f"{SERVICE_DNS}.cluster.local")
    with pytest.raises(VerificationError):
        _verify(serving["ca_bundle"], serving["crt"], "other.ns.svc")
    cert = x509.load_pem_x509_certificate(serving["crt"])
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages
    now = datetime.datetime.now(datetime.timezone.utc)
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
    ca = x509.load_pem_x509_certificate(serving["ca_bundle"])
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True


def test_ca_bundle_does_not_verify_another_render(render, serving):
    """Each render makes a new CA; a stale caBundle would not verify the new certificate."""
    other = one(render(None, "--set", "commonLabels.render=second"), "Secret", f"{FULLNAME}-tls")
    with pytest.raises(VerificationError):
        _verify(serving["ca_bundle"], secret_bytes(other, "tls.crt"), SERVICE_DNS)


def _write(tmp: Path, name: str, data: bytes) -> str:
    path = tmp / name
    path.write_bytes(data)
    os.chmod(path, 0o600)
    return str(path)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(proc: subprocess.Popen, port: int, log: Path) -> None:
    for _ in range(200):  # at most ~20 s
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{proc.args[0]} did not listen on {port}:\n{log.read_text()[-3000:]}")


@pytest.fixture
def tls_server(serving, tmp_path) -> Iterator[int]:
    """A TLS server on 127.0.0.1 (free port) using the rendered certificate and key; answers b"ok"."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(_write(tmp_path, "tls.crt", serving["crt"]), _write(tmp_path, "tls.key", serving["key"]))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        for _ in range(10):  # bounded: a handful of connections per test
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if stop.is_set():
                conn.close()
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    stop.set()
    socket.create_connection(("127.0.0.1", port), timeout=10).close()  # wake accept()
    listener.close()
    thread.join(timeout=10)


def _handshake(port: int, ca_bundle: bytes, server_name: str) -> tuple[bytes, dict]:
    context = ssl.create_default_context(cadata=ca_bundle.decode())
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname=server_name) as tls:
            return tls.recv(2), tls.getpeercert()


def test_tls_handshake_for_the_service_name(tls_server, serving):
    data, peer = _handshake(tls_server, serving["ca_bundle"], SERVICE_DNS)
    assert data == b"ok"
    assert ("DNS", SERVICE_DNS) in peer["subjectAltName"]


def test_tls_handshake_rejects_a_wrong_name(tls_server, serving):
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(tls_server, serving["ca_bundle"], f"{FULLNAME}.other-namespace.svc")


# --- the real extserver with the rendered certificate and key ------------------------------

@pytest.fixture
def extserver_with_rendered_cert(serving, tmp_path) -> Iterator[int]:
    """`extserver serve` (local mode, embedded store in tmp_path) on a free 127.0.0.1 port,
    started with the rendered tls.crt/tls.key as the Deployment passes them. Anonymous auth
    is on, as in a cluster, so that the kubelet-style probe below needs no credentials."""
    port = _free_port()
    cmd = [sys.executable, "-c", "import sys; from extserver.cli import main; sys.exit(main())",
           "serve", "--bind-address=127.0.0.1", f"--secure-port={port}",
           f"--tls-cert-file={_write(tmp_path, 'tls.crt', serving['crt'])}",
           f"--tls-private-key-file={_write(tmp_path, 'tls.key', serving['key'])}",
           f"--data-dir={tmp_path / 'data'}", "--storage-backend=embedded", "--anonymous-auth=true"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    log_path = tmp_path / "extserver.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
        try:
            _wait_listening(proc, port, log_path)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


def _https_get(port: int, ca_bundle: bytes, server_name: str, path: str) -> tuple[int, str]:
    context = ssl.create_default_context(cadata=ca_bundle.decode())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname=server_name) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
            response = b""
            while chunk := tls.recv(65536):
                response += chunk
            version = tls.version()
    status = int(response.split(b" ", 2)[1])
    return status, version


def test_real_server_serves_the_rendered_certificate_for_the_service_name(extserver_with_rendered_cert, serving):
    status, version = _https_get(extserver_with_rendered_cert, serving["ca_bundle"], SERVICE_DNS, "/livez")
    assert status == 200
    assert version in ("TLSv1.2", "TLSv1.3")
    with pytest.raises(ssl.SSLCertVerificationError):
        _https_get(extserver_with_rendered_cert, serving["ca_bundle"], "extserver.elsewhere.svc", "/livez")


# --- bundled etcd: the rendered member/client certificates and flags with the real etcd ---

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


@pytest.fixture
def bundled_etcd(render, tmp_path) -> Iterator[dict]:
    """Start the real etcd with the StatefulSet's rendered flags and certificates.

    Only addresses are rewritten: listeners move to free 127.0.0.1 ports and the member's
    cluster DNS name (which does not resolve here) to 127.0.0.1; the client must still
    verify the certificate for that DNS name.
    """
    if not os.path.exists(ETCD):
        pytest.fail(f"etcd binary not found at {ETCD}")
    objects = render()
    peer = one(objects, "Secret", f"{FULLNAME}-etcd-peer")
    client = one(objects, "Secret", f"{FULLNAME}-etcd-client")
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    for key in ("ca.crt", "tls.crt", "tls.key"):
        _write(tls_dir, key, secret_bytes(peer, key))
    sts = one(objects, "StatefulSet")
    member = f"{sts['metadata']['name']}-0"
    host = f"{member}.{FULLNAME}-etcd-headless.{NAMESPACE}.svc"
    ports = {2379: _free_port(), 2380: _free_port(), 2381: _free_port()}
    args = []
    for arg in sts["spec"]["template"]["spec"]["containers"][0]["args"]:
        arg = arg.replace("$(POD_NAME)", member).replace("/etc/etcd/tls", str(tls_dir))
        arg = arg.replace("/var/lib/etcd/data", str(tmp_path / "data"))
        for original, port in ports.items():
            arg = arg.replace(f"0.0.0.0:{original}", f"127.0.0.1:{port}")
            arg = arg.replace(f"{host}:{original}", f"127.0.0.1:{port}")
        args.append(arg)
    log = (tmp_path / "etcd.log").open("wb")
    proc = subprocess.Popen([ETCD, *args], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        _wait_listening(proc, ports[2379], tmp_path / "etcd.log")
        yield {"port": ports[2379], "metrics_port": ports[2381], "host": host,
               "ca": secret_bytes(client, "ca.crt"), "crt": secret_bytes(client, "tls.crt"),
               "key": secret_bytes(client, "tls.key"), "tmp": tmp_path}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
        log.close()


def _etcd_get(etcd: dict, path: str, with_client_cert: bool = True) -> tuple[int, bytes]:
    """GET over TLS to 127.0.0.1, verifying the certificate for the member's DNS name."""
    context = ssl.create_default_context(cadata=etcd["ca"].decode())
    if with_client_cert:
        context.load_cert_chain(_write(etcd["tmp"], "client.crt", etcd["crt"]),
                                _write(etcd["tmp"], "client.key", etcd["key"]))
    request = f"GET {path} HTTP/1.1\r\nHost: {etcd['host']}\r\nConnection: close\r\n\r\n".encode()
    status, body = 0, b""
    for _ in range(50):  # bounded: the member may still be electing itself leader (503)
        with socket.create_connection(("127.0.0.1", etcd["port"]), timeout=10) as sock:
            with context.wrap_socket(sock, server_hostname=etcd["host"]) as tls:
                tls.sendall(request)
                response = b""
                while chunk := tls.recv(65536):
                    response += chunk
        head, _, body = response.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head else 0
        if status != 503:
            break
        time.sleep(0.2)
    return status, body


def test_bundled_etcd_serves_mutual_tls_with_the_rendered_certificates(bundled_etcd):
    status, body = _etcd_get(bundled_etcd, "/version")
    assert status == 200
    assert b"etcdserver" in body
    status, body = _etcd_get(bundled_etcd, "/health")
    assert status == 200 and b'"health":"true"' in body


def test_bundled_etcd_rejects_clients_without_the_client_certificate(bundled_etcd):
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _etcd_get(bundled_etcd, "/version", with_client_cert=False)


def test_bundled_etcd_probe_endpoint_is_plain_http(bundled_etcd):
    status, body = 0, b""
    for _ in range(50):  # bounded: 503 until the member has elected itself leader
        conn = http.client.HTTPConnection("127.0.0.1", bundled_etcd["metrics_port"], timeout=10)
        try:
            conn.request("GET", "/health")
            response = conn.getresponse()
            status, body = response.status, response.read()
        finally:
            conn.close()
        if status != 503:
            break
        time.sleep(0.2)
    assert status == 200
    assert b'"health":"true"' in body
