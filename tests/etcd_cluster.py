"""Real etcd processes for tests and benchmarks.

:class:`EtcdCluster` starts one member or a three-member cluster of the ``etcd`` binary
(``/usr/bin/etcd``, or ``$ETCD_BINARY``) on free 127.0.0.1 ports with its data in a
directory the caller owns (a pytest ``tmp_path``), optionally with TLS (a CA, a server
certificate and a client certificate generated with ``cryptography``). Members are
stopped, killed and restarted individually by PID; the leader is found through the
gRPC gateway's ``/v3/maintenance/status``; ``etcdctl`` runs against the cluster for
reading raw keys independently of the backend under test.

The methods block (they wait for processes and poll HTTP); from async code call them
through ``asyncio.to_thread`` so the event loop keeps running.
"""
from __future__ import annotations

import asyncio
import atexit
import base64
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from extserver.storage.etcd3 import Etcd3Backend

INSTALL_HINT = ("the etcd server binary was not found (looked for $ETCD_BINARY, /usr/bin/etcd and "
                "`etcd` on PATH); install it with `apt-get install etcd-server` (or set ETCD_BINARY)")


class EtcdNotInstalled(RuntimeError):
    """The etcd binary is missing."""


def etcd_binary() -> str:
    """The etcd server binary to run; raises :class:`EtcdNotInstalled` with the install hint."""
    for candidate in (os.environ.get("ETCD_BINARY"), "/usr/bin/etcd", shutil.which("etcd")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise EtcdNotInstalled(INSTALL_HINT)


def etcdctl_binary() -> str:
    for candidate in (os.environ.get("ETCDCTL_BINARY"), "/usr/bin/etcdctl", shutil.which("etcdctl")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise EtcdNotInstalled(INSTALL_HINT.replace("etcd server binary", "etcdctl binary"))


#: clusters with members possibly running, stopped at interpreter exit as a safety net
_LIVE: set["EtcdCluster"] = set()


@atexit.register
def _stop_leftovers() -> None:
    for cluster in list(_LIVE):
        cluster.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# TLS material
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TLSFiles:
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _issue(subject: str, issuer_name: x509.Name, issuer_key: ec.EllipticCurvePrivateKey,
           key: ec.EllipticCurvePrivateKey, *, ca: bool = False, server: bool = False,
           client: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    else:
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
                 ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def generate_tls(directory: Path) -> TLSFiles:
    """A fresh CA, a server certificate for 127.0.0.1/localhost (also used between peers)
    and a client certificate, as PEM files in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "extserver-test-etcd-ca")])
    ca_cert = _issue("extserver-test-etcd-ca", ca_name, ca_key, ca_key, ca=True)
    files = TLSFiles(directory / "ca.crt", directory / "server.crt", directory / "server.key",
                     directory / "client.crt", directory / "client.key")
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    for cert_path, key_path, cn, server in ((files.server_cert, files.server_key, "etcd-server", True),
                                            (files.client_cert, files.client_key, "extserver", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(cn, ca_name, ca_key, key, server=server, client=True)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
    return files


# ---------------------------------------------------------------------------------------
# Members and clusters
# ---------------------------------------------------------------------------------------

@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class EtcdCluster:
    """One or more etcd members on 127.0.0.1, data under ``base_dir``.

    Use as a context manager (``with EtcdCluster(tmp_path, size=3) as cluster: ...``) or
    call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, base_dir: Path | str, *, size: int = 1, tls: bool = False,
                 heartbeat_ms: int = 100, election_ms: int = 1000, extra_args: list[str] | None = None):
        if size < 1:
            raise ValueError("size must be >= 1")
        self.binary = etcd_binary()
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.tls: TLSFiles | None = generate_tls(self.base_dir / "pki") if tls else None
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.extra_args = list(extra_args or [])
        self.token = f"extserver-test-{os.getpid()}-{free_port()}"
        self.members: list[Member] = []
        for i in range(size):
            name = f"m{i}"
            member_dir = self.base_dir / name
            member_dir.mkdir(exist_ok=True)
            self.members.append(Member(name, free_port(), free_port(), member_dir / "data", member_dir / "etcd.log"))

    # -- addresses ------------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def client_url(self, i: int) -> str:
        return f"{self.scheme}://127.0.0.1:{self.members[i].client_port}"

    def peer_url(self, i: int) -> str:
        return f"{self.scheme}://127.0.0.1:{self.members[i].peer_port}"

    @property
    def endpoints(self) -> list[str]:
        """``host:port`` of every member's client listener (the backend's ``endpoints``)."""
        return [f"127.0.0.1:{m.client_port}" for m in self.members]

    @property
    def client_urls(self) -> list[str]:
        return [self.client_url(i) for i in range(len(self.members))]

    # -- lifecycle ------------------------------------------------------------------------

    def _command(self, i: int) -> list[str]:
        initial = ",".join(f"{m.name}={self.peer_url(j)}" for j, m in enumerate(self.members))
        cmd = [self.binary, "--name", self.members[i].name, "--data-dir", str(self.members[i].data_dir),
               "--listen-client-urls", self.client_url(i), "--advertise-client-urls", self.client_url(i),
               "--listen-peer-urls", self.peer_url(i), "--initial-advertise-peer-urls", self.peer_url(i),
               "--initial-cluster", initial, "--initial-cluster-state", "new",
               "--initial-cluster-token", self.token,
               "--heartbeat-interval", str(self.heartbeat_ms), "--election-timeout", str(self.election_ms),
               "--logger", "zap", "--log-outputs", "stderr"]
        if self.tls:
            t = self.tls
            cmd += ["--cert-file", str(t.server_cert), "--key-file", str(t.server_key),
                    "--trusted-ca-file", str(t.ca_file), "--client-cert-auth",
                    "--peer-cert-file", str(t.server_cert), "--peer-key-file", str(t.server_key),
                    "--peer-trusted-ca-file", str(t.ca_file), "--peer-client-cert-auth"]
        return cmd + self.extra_args

    def start_member(self, i: int) -> None:
        """Spawn member ``i`` (again: an existing data dir makes etcd rejoin with its state).
        Does not wait for health."""
        m = self.members[i]
        if m.running:
            raise RuntimeError(f"member {m.name} is already running (pid {m.pid})")
        _LIVE.add(self)
        with open(m.log_path, "ab") as log:
            m.process = subprocess.Popen(self._command(i), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         cwd=self.base_dir, start_new_session=True)

    def start(self, timeout: float = 60.0) -> EtcdCluster:
        """Start every member and wait until all report healthy."""
        for i in range(len(self.members)):
            self.start_member(i)
        try:
            self.wait_healthy(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop_member(self, i: int, timeout: float = 15.0) -> None:
        """SIGTERM member ``i`` (by PID), SIGKILL if it has not exited within ``timeout``."""
        m = self.members[i]
        if not m.running:
            return
        assert m.process is not None
        m.process.send_signal(signal.SIGTERM)
        try:
            m.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            m.process.kill()
            m.process.wait(timeout=timeout)

    def kill_member(self, i: int) -> None:
        """SIGKILL member ``i`` (``kill -9``) by PID and reap it."""
        m = self.members[i]
        if not m.running:
            return
        assert m.process is not None
        m.process.kill()
        m.process.wait(timeout=15)

    def restart_member(self, i: int, timeout: float = 60.0) -> None:
        """Stop member ``i`` cleanly, start it again and wait until it is healthy."""
        self.stop_member(i)
        self.start_member(i)
        self.wait_member_healthy(i, timeout=timeout)

    def stop(self) -> None:
        """Stop every running member (by PID)."""
        for i in range(len(self.members)):
            try:
                self.stop_member(i)
            except Exception:  # noqa: BLE001 - best effort, then kill
                self.kill_member(i)
        _LIVE.discard(self)

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- probing --------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.tls.ca_file))
        ctx.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return ctx

    def _http(self, i: int, path: str, body: bytes | None = None, timeout: float = 3.0) -> dict:
        req = urllib.request.Request(self.client_url(i) + path, data=body, method="POST" if body else "GET")
        with urllib.request.urlopen(req, timeout=timeout, context=self._ssl_context()) as resp:
            return json.loads(resp.read())

    def member_healthy(self, i: int) -> bool:
        """``/health`` of member ``i``: true only when it has a leader and a quorum read works."""
        if not self.members[i].running:
            return False
        try:
            return self._http(i, "/health").get("health") == "true"
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def _wait(self, what: str, predicate, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.members:
                if m.process is not None and m.process.poll() is not None and m.process.returncode not in (0, -15, -9):
                    raise RuntimeError(f"etcd member {m.name} exited with {m.process.returncode}:\n{self.log_tail(m)}")
            if predicate():
                return
            time.sleep(0.1)
        logs = "\n".join(f"--- {m.name}\n{self.log_tail(m)}" for m in self.members)
        raise TimeoutError(f"etcd: {what} not reached within {timeout}s\n{logs}")

    def wait_member_healthy(self, i: int, timeout: float = 60.0) -> None:
        self._wait(f"member {self.members[i].name} healthy", lambda: self.member_healthy(i), timeout)

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Wait until every running member reports healthy."""
        self._wait("all members healthy",
                   lambda: all(self.member_healthy(i) for i, m in enumerate(self.members) if m.running), timeout)

    def status(self, i: int) -> dict:
        """``/v3/maintenance/status`` of member ``i`` (numbers are strings, as the gateway sends them)."""
        return self._http(i, "/v3/maintenance/status", b"{}")

    def leader_index(self, timeout: float = 30.0) -> int:
        """Index of the current leader (waits, bounded, until a running member knows one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, m in enumerate(self.members):
                if not m.running:
                    continue
                try:
                    st = self.status(i)
                except (OSError, ValueError, urllib.error.URLError):
                    continue
                if st.get("leader") and st["leader"] == st["header"]["member_id"]:
                    return i
            time.sleep(0.1)
        raise TimeoutError(f"no etcd leader within {timeout}s")

    def etcdctl(self, *args: str, timeout: float = 30.0) -> str:
        """Run ``etcdctl`` (API v3) against the running members; returns stdout."""
        urls = [self.client_url(i) for i, m in enumerate(self.members) if m.running]
        cmd = [etcdctl_binary(), "--endpoints", ",".join(urls), "--dial-timeout", "3s", "--command-timeout", "10s"]
        if self.tls:
            cmd += ["--cacert", str(self.tls.ca_file), "--cert", str(self.tls.client_cert),
                    "--key", str(self.tls.client_key)]
        out = subprocess.run(cmd + list(args), capture_output=True, timeout=timeout,
                             env={**os.environ, "ETCDCTL_API": "3"})
        if out.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)} failed: {out.stderr.decode(errors='replace')}")
        return out.stdout.decode()

    def get_raw(self, key: str, *, prefix: bool = False) -> dict[str, bytes]:
        """Raw keys and values as etcd stores them (read with ``etcdctl get -w json``)."""
        args = ["get", key, "-w", "json"] + (["--prefix"] if prefix else [])
        data = json.loads(self.etcdctl(*args))
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", ""))
                for kv in data.get("kvs", [])}

    @staticmethod
    def log_tail(m: Member, lines: int = 30) -> str:
        try:
            return "\n".join(m.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# ---------------------------------------------------------------------------------------
# A backend that owns its etcd (for the parametrised storage tests)
# ---------------------------------------------------------------------------------------

class OwnedEtcd3Backend(Etcd3Backend):
    """An :class:`Etcd3Backend` whose ``close()`` also stops the etcd it was given."""

    def __init__(self, cluster: EtcdCluster, **kwargs: Any):
        super().__init__(cluster.client_urls, **kwargs)
        self.cluster = cluster

    async def start(self) -> None:
        try:
            await super().start()
        except BaseException:
            await asyncio.to_thread(self.cluster.stop)
            raise

    async def close(self) -> None:
        await super().close()
        await asyncio.to_thread(self.cluster.stop)


async def etcd_backend(base_dir: Path, **backend_kwargs: Any) -> OwnedEtcd3Backend:
    """Start a single-member etcd in ``base_dir`` and return an (unstarted) backend on it;
    TLS material, if asked for with ``tls=True``, is passed to the backend. Compaction is
    off unless ``compaction_interval`` is given."""
    tls = backend_kwargs.pop("tls", False)
    cluster = EtcdCluster(base_dir, tls=tls)
    await asyncio.to_thread(cluster.start)
    if cluster.tls:
        backend_kwargs.update(ca_file=str(cluster.tls.ca_file), cert_file=str(cluster.tls.client_cert),
                              key_file=str(cluster.tls.client_key))
    backend_kwargs.setdefault("compaction_interval", 0)
    return OwnedEtcd3Backend(cluster, **backend_kwargs)
