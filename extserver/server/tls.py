"""Serving TLS whose certificate and trusted client CAs change without a restart.

Python cannot swap the context of a listening socket, but OpenSSL's ClientHello callback
can move one handshake to another context: the listener's ``sni_callback`` (called for every
ClientHello, also without SNI, e.g. a client dialing ``https://127.0.0.1``) sets
``ssl_object.context`` to the newest context. A new context is built when

* the serving cert/key files change on disk (a thread polls them every ``poll_interval``;
  a pair that does not load, e.g. half-written, is retried at the next poll), or
* :meth:`DynamicTLS.set_client_cas` replaces the trusted client-CA bundle (the auth layer
  calls it when the ``extension-apiserver-authentication`` ConfigMap or a CA file changes).

Contexts are built from the PEM bytes in memory (a ``memfd`` on Linux: no disk I/O, so
``set_client_cas`` is safe on the event loop and applies from the next handshake).
Client certificates are optional (``CERT_OPTIONAL``: asked for on every connection and
verified when presented; OpenSSL keeps the listener's verify mode whatever context a
handshake moves to, so it is set even before any CA is trusted: until then a client that
presents a certificate is refused at the handshake). ALPN offers ``http/1.1``. Key
material is never logged."""
from __future__ import annotations

import asyncio
import logging
import os
import ssl
import tempfile
import threading
from pathlib import Path

from aiohttp import web

log = logging.getLogger("extserver.tls")

MIN_VERSIONS = {"VersionTLS12": ssl.TLSVersion.TLSv1_2, "VersionTLS13": ssl.TLSVersion.TLSv1_3}

#: TLS 1.2 suites: Go's crypto/tls defaults (what kube-apiserver offers without
#: --tls-cipher-suites), in Go's preference order, by their OpenSSL names. OpenSSL's own
#: default list adds the CBC-SHA256/SHA384 suites Go disables (Lucky13). TLS 1.3's suites
#: are OpenSSL's defaults, the same three as Go's.
GO_DEFAULT_TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
])


def peer_der(request: web.Request) -> bytes | None:
    """The verified client certificate of ``request``'s connection (DER), or None."""
    transport = request.transport
    if transport is None:
        return None
    sslobj = transport.get_extra_info("ssl_object")
    if sslobj is None:
        return None
    try:
        return sslobj.getpeercert(binary_form=True)
    except ValueError:
        return None


def _load_chain(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """``load_cert_chain`` from memory (OpenSSL only reads files)."""
    data = cert_pem.rstrip(b"\n") + b"\n" + key_pem
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("extserver-serving", os.MFD_CLOEXEC)
        try:
            with os.fdopen(os.dup(fd), "wb") as f:
                f.write(data)
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="extserver-tls-") as d:  # not Linux: a private temp file
        p = Path(d) / "pair.pem"
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        ctx.load_cert_chain(str(p))


class _HandshakeLoggingSSLObject(ssl.SSLObject):
    """Logs a failed TLS handshake, as Go's net/http does ("TLS handshake error"): asyncio
    reports one only in debug mode, yet it is how an untrusted client certificate (no
    front-proxy CA) or a wrong APIService caBundle shows on the server's side. A client
    hanging up mid-handshake (a TCP probe, a port scan) is not logged."""

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            raise
        except ssl.SSLCertVerificationError as e:
            log.warning("TLS handshake error: client certificate not trusted: %s", e.verify_message)
            raise
        except ssl.SSLError as e:
            reason = e.reason or str(e)
            if "ALERT" in reason:  # the client sent an alert: it refused our certificate
                log.warning("TLS handshake error: the client refused the serving certificate (%s)",
                            reason.lower().replace("_", " "))
            else:
                log.warning("TLS handshake error: %s", reason)
            raise


def build_context(cert_pem: bytes, key_pem: bytes, *, min_version: str = "VersionTLS12",
                  client_cas_pem: bytes | None = None) -> ssl.SSLContext:
    """A server context for one cert/key pair and client-CA bundle. Raises ``ssl.SSLError``
    / ``ValueError`` when the pair or the bundle does not load."""
    if min_version not in MIN_VERSIONS:
        raise ValueError(f"unsupported TLS version {min_version!r} (supported: {', '.join(MIN_VERSIONS)})")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.sslobject_class = _HandshakeLoggingSSLObject
    ctx.minimum_version = MIN_VERSIONS[min_version]
    ctx.set_ciphers(GO_DEFAULT_TLS12_CIPHERS)
    _load_chain(ctx, cert_pem, key_pem)
    ctx.set_alpn_protocols(["http/1.1"])
    # always: a handshake keeps the verify mode of the listener's context, whichever
    # context it is moved to, so client certificates must be asked for from the start
    ctx.verify_mode = ssl.CERT_OPTIONAL
    if client_cas_pem and client_cas_pem.strip():
        ctx.load_verify_locations(cadata=client_cas_pem.decode())
    return ctx


def _stat(paths: tuple[str, ...]) -> tuple | None:
    try:
        return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in (os.stat(p) for p in paths))
    except OSError:
        return None


def _read(paths: tuple[str, ...]) -> tuple[bytes, ...] | None:
    try:
        return tuple(Path(p).read_bytes() for p in paths)
    except OSError:
        return None


class DynamicTLS:
    """The listener's TLS: see the module doc. ``start()``/``stop()`` run the file poller."""

    def __init__(self, cert_file: str | Path, key_file: str | Path, *, min_version: str = "VersionTLS12",
                 client_cas_pem: bytes | None = None, poll_interval: float = 1.0):
        self.cert_file, self.key_file = str(cert_file), str(key_file)
        self.min_version = min_version
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        # read once at startup, before serving
        self._files_sig = _stat((self.cert_file, self.key_file))
        pair = _read((self.cert_file, self.key_file))
        if pair is None:
            raise OSError(f"cannot read {self.cert_file} / {self.key_file}")
        self._cert_pem, self._key_pem = pair
        self._cas_pem = client_cas_pem or None
        self._listener = self._build()
        self._listener.sni_callback = self._on_client_hello
        self._current = self._listener
        self._failed: tuple[bytes, bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: how many times a new context was put in place (serving cert or client CAs)
        self.reloads = 0

    def _build(self) -> ssl.SSLContext:
        return build_context(self._cert_pem, self._key_pem, min_version=self.min_version,
                             client_cas_pem=self._cas_pem)

    def context(self) -> ssl.SSLContext:
        """The listener's context (give it to the server socket once)."""
        return self._listener

    def _on_client_hello(self, sslobj: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext) -> None:
        current = self._current
        if current is not ctx:
            sslobj.context = current

    # --- client CAs --------------------------------------------------------------------
    def set_client_cas(self, pem: bytes | None) -> None:
        """Trust ``pem`` (a bundle of CA certificates) for client certificates from the next
        handshake on. Raises ``ssl.SSLError`` for a bundle that does not load (the previous
        one stays)."""
        with self._lock:
            old = self._cas_pem
            self._cas_pem = pem or None
            try:
                self._current = self._build()
            except (ssl.SSLError, ValueError):
                self._cas_pem = old
                raise
            self.reloads += 1
        log.info("client CA bundle replaced (%d certificate(s))", (pem or b"").count(b"-----BEGIN CERTIFICATE-----"))

    # --- file polling -------------------------------------------------------------------
    def poll_once(self) -> None:
        """Check the serving pair on disk (runs in the poller thread)."""
        self._poll_serving()

    def _poll_serving(self) -> None:
        sig = _stat((self.cert_file, self.key_file))
        if sig is None or sig == self._files_sig:
            return
        pair = _read((self.cert_file, self.key_file))
        if pair is None:
            return
        if pair == (self._cert_pem, self._key_pem):
            self._files_sig = sig
            return
        with self._lock:
            try:
                ctx = build_context(pair[0], pair[1], min_version=self.min_version, client_cas_pem=self._cas_pem)
            except (ssl.SSLError, ValueError) as e:
                if pair != self._failed:  # once per content: a rotation may be half-written
                    self._failed = pair
                    log.warning("new serving certificate in %s / %s does not load yet: %s",
                                self.cert_file, self.key_file, e)
                return
            self._cert_pem, self._key_pem = pair
            self._files_sig = sig
            self._current = ctx
            self.reloads += 1
        log.info("serving certificate reloaded from %s", self.cert_file)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.poll_once()
            except Exception:  # keep polling whatever one round hit
                log.exception("TLS file poller")

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="tls-reloader", daemon=True)
            self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
