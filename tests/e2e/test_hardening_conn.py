"""Issue 10, items 2, 3 and part of 6, against the real server process over real TLS:
connection discipline (idle TLS connections cannot lock out the admin, slow-loris headers
and idle keep-alive connections are dropped, oversized headers get 431), big lists stream
(counted in flight until sent: 429 beyond the limit; probes answered meanwhile; cut by the
request timeout; bytes unchanged), Go's 501 for ``Transfer-Encoding: gzip, chunked``, Go's
TLS 1.2 cipher suites, private file modes."""
from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import stat
import time

import pytest
import yaml

from tests.e2e.cluster_harness import ClusterEnv, ClusterServer
from tests.e2e.harness import FL_B, API, ServerProcess, flunder, new_tmp_dir

HANG_GUARD = 15.0  # socket timeout: a server that never closes fails the test instead of hanging it


class LimitedServer(ServerProcess):
    """``extserver serve`` under ``prlimit --nofile=SOFT:HARD`` (a small descriptor budget)."""

    def __init__(self, data_dir, soft: int, hard: int, **kw):
        super().__init__(data_dir, **kw)
        self.nofile = (soft, hard)

    def command(self) -> list[str]:
        return ["prlimit", f"--nofile={self.nofile[0]}:{self.nofile[1]}", "--"] + super().command()


def tls_ctx(srv: ServerProcess, cert: bool = False, **kw) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(*srv.client_cert)
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def tls_conn(srv: ServerProcess, ctx: ssl.SSLContext | None = None, rcvbuf: int = 0) -> ssl.SSLSocket:
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.settimeout(HANG_GUARD)
    raw.connect(("127.0.0.1", srv.port))
    return (ctx or tls_ctx(srv)).wrap_socket(raw)


def read_until_closed(s: ssl.SSLSocket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while True:
        try:
            d = s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            return out
        if not d:
            return out
        out += d


def http_response(s: ssl.SSLSocket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (Content-Length or chunked) read off ``s``."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        assert d, "connection closed before the response headers"
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}

    def more() -> bytes:
        d = s.recv(65536)
        assert d, "connection closed in the body"
        return d

    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            rest += more()
        return status, headers, rest[:n]
    body = b""
    while True:
        while b"\r\n" not in rest:
            rest += more()
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        while len(rest) < size + 2:
            rest += more()
        if size == 0:
            return status, headers, body
        body += rest[:size]
        rest = rest[size + 2:]


# --- connection discipline (local mode, a small descriptor budget) ---------------------------
@pytest.fixture(scope="module")
def srv():
    # 200 descriptors in all: without the connection cap, 200 idle TLS connections exhaust them
    s = LimitedServer(new_tmp_dir("extserver-conn-"), 200, 200,
                      extra_args=["--read-header-timeout", "1s", "--idle-timeout", "2s",
                                  "--tls-handshake-timeout", "30s", "--max-tls-handshakes", "8"]).start()
    yield s
    s.stop()
    shutil.rmtree(s.data_dir, ignore_errors=True)


def test_idle_tls_connections_without_cert_do_not_lock_out_the_admin(srv):
    held = []
    try:
        for _ in range(220):  # more than the descriptor limit; none sends a request or a cert
            try:
                held.append(tls_conn(srv))
            except (OSError, ssl.SSLError):
                pass
        admin = API(srv)
        assert admin.get("/readyz").status_code == 200
        r = admin.get(FL_B + "/flunders")
        assert r.status_code == 200 and r.json()["kind"] == "FlunderList"
    finally:
        for s in held:
            s.close()


def test_stalled_tls_handshakes_do_not_lock_out_the_admin(srv):
    held = []
    try:
        for _ in range(220):  # TCP connections that never send a ClientHello (handshake timeout: 30 s)
            raw = socket.create_connection(("127.0.0.1", srv.port), timeout=HANG_GUARD)
            held.append(raw)
        time.sleep(0.5)  # let the server accept them all
        admin = API(srv)
        assert admin.get("/readyz").status_code == 200
        assert admin.get(FL_B + "/flunders").status_code == 200
        metrics = admin.get("/metrics").text
        assert 'extserver_shed_connections_total{reason="handshake"}' in metrics
        shed = next(ln for ln in metrics.splitlines() if ln.startswith('extserver_shed_connections_total{reason="handshake"}'))
        assert int(shed.split()[-1]) > 0
        # the oldest stalled handshakes were aborted to make room
        held[0].settimeout(HANG_GUARD)
        try:
            assert held[0].recv(1) == b""
        except ConnectionResetError:
            pass
    finally:
        for s in held:
            s.close()


def test_open_files_soft_limit_is_raised_to_the_hard_limit():
    s = LimitedServer(new_tmp_dir("extserver-nofile-"), 256, 1024).start()
    try:
        limits = open(f"/proc/{s.proc.pid}/limits").read()
        line = next(ln for ln in limits.splitlines() if ln.startswith("Max open files"))
        assert line.split()[3:5] == ["1024", "1024"]
    finally:
        s.stop()
        shutil.rmtree(s.data_dir, ignore_errors=True)


def test_slow_loris_headers_are_dropped_after_the_header_timeout(srv):
    s = tls_conn(srv, tls_ctx(srv, cert=True))
    s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n")
    got = b""
    for _ in range(int(HANG_GUARD / 0.25)):  # one header byte every 250 ms, never finishing
        try:
            s.sendall(b"X")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            break
        s.settimeout(0.25)
        try:
            got = s.recv(100)
            break
        except socket.timeout:
            continue
        except (ConnectionResetError, ssl.SSLError):
            break
    else:
        pytest.fail("the connection was still open after 15 s of slow headers")
    assert got == b""  # closed without an answer, as Go does


def test_idle_keep_alive_connection_is_closed(srv):
    s = tls_conn(srv, tls_ctx(srv, cert=True))
    s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body = http_response(s)
    assert status == 200 and body == b"ok"
    assert read_until_closed(s) == b""  # the server closes it (HANG_GUARD otherwise)


def test_oversized_headers_are_refused_with_431(srv):
    s = tls_conn(srv, tls_ctx(srv, cert=True))
    s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * ((1 << 20) + 8192) + b"\r\n\r\n")
    out = read_until_closed(s)
    assert out.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert out.endswith(b"\r\n\r\n431 Request Header Fields Too Large")
    # under the 1 MiB limit a single long header is fine (Go has no per-line limit)
    s = tls_conn(srv, tls_ctx(srv, cert=True))
    s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n"
              + b"".join(b"X-H%d: v\r\n" % i for i in range(300)) + b"\r\n")
    status, _, body = http_response(s)
    assert status == 200 and body == b"ok"
    s.close()


def test_gzip_transfer_encoding_is_not_implemented(srv):
    s = tls_conn(srv, tls_ctx(srv, cert=True))
    body = json.dumps(flunder("te")).encode()
    s.sendall(b"POST " + FL_B.encode() + b"/namespaces/default/flunders HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
              + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    status, headers, answer = http_response(s)
    assert status == 501 and answer == b"501 Not Implemented"
    assert headers.get("connection", "").lower() == "close"
    assert API(srv).get(FL_B + "/namespaces/default/flunders/te").status_code == 404  # nothing stored


GO_TLS12 = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305",
            "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA"]  # Go's defaults for the EC serving key
NOT_GO = ["ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384"]  # CBC suites Go leaves out


def test_tls12_offers_only_gos_default_cipher_suites(srv):
    for name in GO_TLS12 + NOT_GO:
        ctx = tls_ctx(srv, maximum_version=ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers(name + ":@SECLEVEL=0")
        try:
            s = tls_conn(srv, ctx)
            negotiated = s.cipher()[0]
            s.close()
        except ssl.SSLError:
            negotiated = None
        assert negotiated == (name if name in GO_TLS12 else None), name


# --- file modes --------------------------------------------------------------------------------
POLICY = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n"


def assert_private(files, dirs) -> None:
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
    for d in dirs:
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, d


def test_files_the_server_writes_are_private_and_loose_modes_are_tightened():
    tmp = new_tmp_dir("extserver-modes-")
    (tmp / "policy.yaml").write_text(POLICY)
    log = tmp / "audit.log"
    data = tmp / "data"
    args = ["--audit-log-path", str(log), "--audit-policy-file", str(tmp / "policy.yaml")]
    private_files = [data / "store" / "store.db", data / "store" / "store.db-wal", data / "store" / "store.db-shm",
                     log, data / "certs" / "apiserver.key", data / "admin.key", data / "local-ca.key"]
    private_dirs = [data, data / "store", data / "certs"]
    old_umask = os.umask(0o022)
    try:
        s = ServerProcess(data, extra_args=args).start()
        try:
            assert API(s).post(FL_B + "/namespaces/default/flunders", flunder("m")).status_code == 201
            assert_private(private_files, private_dirs)
        finally:
            s.stop()
        for f in private_files:  # an older deployment's modes
            if f.exists():
                os.chmod(f, 0o644)
        for d in private_dirs:
            os.chmod(d, 0o755)
        s = ServerProcess(data, extra_args=args).start()
        try:
            assert_private(private_files, private_dirs)
        finally:
            s.stop()
    finally:
        os.umask(old_umask)
        shutil.rmtree(tmp, ignore_errors=True)


# --- big lists (cluster mode: a user the in-flight limit applies to) ---------------------------
BIG_OBJECTS = 60
PAD = "p" * 200_000  # ~12 MB of list body: far more than the socket buffers of a client that reads nothing


def seed_big(srv: ClusterServer, bob) -> None:
    for i in range(BIG_OBJECTS):
        body = flunder(f"big-{i:03d}", ns="big")
        body["metadata"]["annotations"] = {"pad": PAD}
        r = srv.request("POST", FL_B + "/namespaces/big/flunders", cert=bob, body=body)
        assert r.status == 201, r.body


@pytest.fixture(scope="module")
def cluster():
    env = ClusterEnv()
    env.standin.allow_users("bob")
    srv = ClusterServer(env, ["--max-requests-inflight", "2"]).start()
    bob = env.cert("bob", env.client_ca, "bob")
    seed_big(srv, bob)
    yield srv, bob
    srv.close()
    env.close()


def bob_ctx(srv: ClusterServer, bob) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    ctx.check_hostname = False
    ctx.load_cert_chain(*bob.pair)
    return ctx


def start_stalled_list(srv: ClusterServer, bob, accept: str = "application/json") -> ssl.SSLSocket:
    """A list request whose client reads nothing: the server's writes wait (back-pressure)."""
    s = tls_conn(srv, bob_ctx(srv, bob), rcvbuf=4096)
    s.sendall(f"GET {FL_B}/namespaces/big/flunders HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n\r\n".encode())
    return s


def inflight_read_only(srv: ClusterServer, bob) -> int:
    r = srv.request("GET", "/metrics", cert=bob)
    assert r.status == 200
    for line in r.body.decode().splitlines():
        if line.startswith('apiserver_current_inflight_requests{request_kind="readOnly"}'):
            return int(float(line.split()[-1]))
    raise AssertionError("no in-flight gauge")


def wait_inflight(srv, bob, n: int) -> int:
    seen = 0
    for _ in range(100):
        seen = inflight_read_only(srv, bob) - 1  # less the /metrics request itself
        if seen >= n:
            break
        time.sleep(0.05)
    return seen


def test_inflight_limit_counts_lists_until_their_body_is_sent(cluster):
    srv, bob = cluster
    stalled = [start_stalled_list(srv, bob) for _ in range(2)]
    try:
        refused = None
        for _ in range(100):  # the limit is 2: with both lists still being sent, the next is refused
            r = srv.request("GET", FL_B + "/namespaces/big/flunders?limit=1", cert=bob)
            if r.status == 429:
                refused = r
                break
            time.sleep(0.05)
        assert refused is not None, "no 429 while two big lists were being sent"
        assert refused.json()["reason"] == "TooManyRequests" and refused.headers.get("Retry-After") == "1"
        for s in stalled:  # the stalled lists complete once read, whole
            status, _, body = http_response(s)
            assert status == 200
            assert len(json.loads(body)["items"]) == BIG_OBJECTS
    finally:
        for s in stalled:
            s.close()
    assert srv.request("GET", FL_B + "/namespaces/big/flunders?limit=1", cert=bob).status == 200


def test_healthz_answers_while_a_big_list_is_being_sent(cluster):
    srv, bob = cluster
    for accept in ("application/json;as=Table;v=v1;g=meta.k8s.io", "application/yaml"):
        s = start_stalled_list(srv, bob, accept)
        try:
            assert wait_inflight(srv, bob, 1) >= 1  # the list is still being written
            for probe in ("/healthz", "/livez", "/readyz"):
                r = srv.request("GET", probe, cert=bob)
                assert r.status == 200 and r.body == b"ok", probe
            status, headers, body = http_response(s)
            assert status == 200
            if "yaml" in accept:
                assert len(yaml.load(body, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["items"]) == BIG_OBJECTS
            else:
                assert len(json.loads(body)["rows"]) == BIG_OBJECTS
        finally:
            s.close()


def test_list_body_is_the_stored_objects_bytes(cluster):
    srv, bob = cluster
    r = srv.request("GET", FL_B + "/namespaces/big/flunders", cert=bob)
    assert r.status == 200
    doc = json.loads(r.body)
    rv = doc["metadata"]["resourceVersion"]
    items = [srv.request("GET", FL_B + f"/namespaces/big/flunders/big-{i:03d}", cert=bob).body
             for i in range(BIG_OBJECTS)]
    expected = (b'{"apiVersion":"wardle.example.com/v1beta1","kind":"FlunderList","metadata":{"resourceVersion":"'
                + rv.encode() + b'"},"items":[' + b",".join(items) + b"]}")
    assert r.body == expected


def test_request_timeout_cuts_a_list_whose_body_is_not_taken():
    env = ClusterEnv()
    env.standin.allow_users("bob")
    srv = ClusterServer(env, ["--request-timeout", "2s"]).start()
    try:
        bob = env.cert("bob", env.client_ca, "bob")
        seed_big(srv, bob)
        s = start_stalled_list(srv, bob)
        assert wait_inflight(srv, bob, 1) >= 1
        for _ in range(100):  # until the deadline has passed and the handler let go
            if inflight_read_only(srv, bob) <= 1:  # only the /metrics request itself
                break
            time.sleep(0.1)
        else:
            pytest.fail("the list was still in flight long after its deadline")
        got = read_until_closed(s)  # the connection was aborted: the body is cut short
        assert got.startswith(b"HTTP/1.1 200 OK\r\n")
        assert not got.endswith(b"0\r\n\r\n")
        assert srv.request("GET", "/healthz", cert=bob).status == 200
    finally:
        srv.close()
        env.close()
