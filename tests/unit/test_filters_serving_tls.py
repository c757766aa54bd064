"""``DynamicTLS`` in-process, with a real listener and clients dialing ``127.0.0.1`` (no
SNI): the trusted client CAs are replaced for the next handshake, the serving pair is
reloaded from disk."""
from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path
from typing import Any, Coroutine

import pytest

from extserver.server import certs
from extserver.server.tls import DynamicTLS, build_context


def write_pair(d: Path, ca: certs.CertKey, name: str = "serving") -> None:
    leaf = certs.issue(ca, "localhost", dns=["localhost"], ips=["127.0.0.1"], server=True)
    certs.write_private(d / f"{name}.crt", leaf.cert_pem)
    certs.write_private(d / f"{name}.key", leaf.key_pem)


def client_cert(d: Path, ca: certs.CertKey, cn: str) -> tuple[str, str]:
    leaf = certs.issue(ca, cn, orgs=["g"], client=True)
    certs.write_private(d / f"{cn}.crt", leaf.cert_pem)
    certs.write_private(d / f"{cn}.key", leaf.key_pem)
    return str(d / f"{cn}.crt"), str(d / f"{cn}.key")


class Listener:
    """An asyncio TLS server answering each connection with its peer certificate's CN."""

    def __init__(self, tls: DynamicTLS):
        self.tls = tls
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> "Listener":
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            cert = w.get_extra_info("ssl_object").getpeercert()
            cn = dict(x[0] for x in cert["subject"])["commonName"] if cert else "-"
            w.write(cn.encode())
            await w.drain()
            w.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=self.tls.context())
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def dial(self, ca_file: Path, cert: tuple[str, str] | None = None) -> str:
        def run() -> str:
            ctx = ssl.create_default_context(cafile=str(ca_file))
            if cert:
                ctx.load_cert_chain(*cert)
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    return s.recv(100).decode()
        return await asyncio.to_thread(run)


async def refused(dial: Coroutine[Any, Any, str]) -> bool:
    try:
        return await dial == ""  # TLS 1.3: the refusal comes after the client's handshake
    except (ssl.SSLError, ConnectionError):
        return True


@pytest.fixture
def pki(tmp_path: Path):
    serving1, serving2 = certs.new_ca("serving-1"), certs.new_ca("serving-2")
    clients1, clients2 = certs.new_ca("clients-1"), certs.new_ca("clients-2")
    for name, ca in (("s1", serving1), ("s2", serving2)):
        (tmp_path / f"{name}.ca").write_bytes(ca.cert_pem)
    write_pair(tmp_path, serving1)
    return tmp_path, serving2, clients1, clients2


async def test_set_client_cas_applies_to_the_next_handshake(pki):
    d, _, clients1, clients2 = pki
    alice, bob = client_cert(d, clients1, "alice"), client_cert(d, clients2, "bob")
    tls = DynamicTLS(d / "serving.crt", d / "serving.key", client_cas_pem=clients1.cert_pem)
    async with Listener(tls) as srv:
        assert await srv.dial(d / "s1.ca", alice) == "alice"
        assert await srv.dial(d / "s1.ca") == "-"  # optional: no certificate is fine
        tls.set_client_cas(clients2.cert_pem)
        assert await srv.dial(d / "s1.ca", bob) == "bob"
        assert await refused(srv.dial(d / "s1.ca", alice))  # alice's CA is no longer trusted
        tls.set_client_cas(clients1.cert_pem + clients2.cert_pem)
        assert {await srv.dial(d / "s1.ca", alice), await srv.dial(d / "s1.ca", bob)} == {"alice", "bob"}
        with pytest.raises(ssl.SSLError):
            tls.set_client_cas(b"-----BEGIN CERTIFICATE-----\nnot a cert\n-----END CERTIFICATE-----\n")
        assert await srv.dial(d / "s1.ca", bob) == "bob"  # the bundle before the bad one stays


async def test_serving_pair_reloaded_from_disk(pki):
    d, serving2, clients1, _ = pki
    tls = DynamicTLS(d / "serving.crt", d / "serving.key", client_cas_pem=clients1.cert_pem)
    async with Listener(tls) as srv:
        assert await srv.dial(d / "s1.ca") == "-"
        new = certs.issue(serving2, "localhost", ips=["127.0.0.1"], server=True)
        certs.write_private(d / "serving.crt", new.cert_pem)  # the key is not there yet
        await asyncio.to_thread(tls.poll_once)
        assert tls.reloads == 0 and await srv.dial(d / "s1.ca") == "-"
        certs.write_private(d / "serving.key", new.key_pem)
        await asyncio.to_thread(tls.poll_once)
        assert tls.reloads == 1
        assert await srv.dial(d / "s2.ca") == "-"
        with pytest.raises(ssl.SSLCertVerificationError):
            await srv.dial(d / "s1.ca")
        await asyncio.to_thread(tls.poll_once)  # unchanged files: nothing rebuilt
        assert tls.reloads == 1


async def test_poller_thread_reloads(pki):
    d, serving2, _, _ = pki
    tls = DynamicTLS(d / "serving.crt", d / "serving.key", poll_interval=0.02)
    tls.start()
    try:
        write_pair(d, serving2)
        for _ in range(500):
            if tls.reloads:
                break
            await asyncio.sleep(0.02)
        assert tls.reloads == 1
    finally:
        await tls.stop()


def test_build_context_settings(pki):
    d = pki[0]
    ctx = build_context((d / "serving.crt").read_bytes(), (d / "serving.key").read_bytes(),
                        min_version="VersionTLS13")
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3 and ctx.verify_mode == ssl.CERT_OPTIONAL
    with pytest.raises(ValueError):
        build_context(b"", b"", min_version="VersionTLS10")
    with pytest.raises(ssl.SSLError):
        build_context((d / "serving.crt").read_bytes(), certs.new_ca("x").key_pem)  # mismatched key
