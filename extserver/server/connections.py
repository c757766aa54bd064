"""Connection discipline, as Go's ``http.Server`` in kube-apiserver, under aiohttp.

kube-apiserver's secure server has ``ReadHeaderTimeout`` 32 s, ``IdleTimeout`` 90 s,
``MaxHeaderBytes`` 1 MiB and a TLS handshake bounded by the header timeout; Go gives every
connection its own goroutine, so idle ones cost little. Here every connection is a
descriptor on one event loop, so two caps are added: on open connections and on TLS
handshakes in flight. Both shed load instead of starving everyone:

* at the connection cap, a new connection first closes the connection that has been idle
  (no request in progress, no request bytes pending) the longest; only when none is idle is
  the newcomer closed. A client holding idle keep-alive connections (or TLS connections that
  never send a request) cannot lock out the admin or the kubelet's probes;
* at the handshake cap, the oldest handshake in flight (the one most likely stalled) is
  aborted.

The layer: :class:`LimitedSite` accepts sockets itself, admits each, runs its TLS handshake
with ``loop.connect_accepted_socket`` (so a handshake is visible, timed and cancellable) and
attaches an :class:`HTTPConnection`, aiohttp's per-connection ``RequestHandler`` with Go's
header rules added:

* a request's headers must be complete ``read_header_timeout`` after the connection was set
  up (first request) or after its first byte (later requests); otherwise the connection is
  closed without an answer (Go's behaviour on a header read deadline);
* a keep-alive connection idle for ``idle_timeout`` is closed (aiohttp's keep-alive timer);
* headers beyond ``max_header_bytes`` (+ 4096, Go's slack) get Go's bare
  ``431 Request Header Fields Too Large`` and the connection closes; aiohttp's per-line
  limits are raised above that so Go's single limit applies;
* ``Transfer-Encoding`` other than a single ``chunked`` gets Go's
  ``501 Not Implemented`` (see :func:`unsupported_transfer_encoding`)."""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("extserver.connections")

#: a TLS close (flush + close_notify) lasts this at most; then the socket is dropped
SHUTDOWN_TIMEOUT = 5.0
#: Go's slack over MaxHeaderBytes (net/http: initialReadLimitSize)
HEADER_SLACK = 4096
#: Go's answers written straight to the connection for framing errors (net/http server.go)
_GO_ERROR_HEADERS = b"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
TOO_LARGE = b"431 Request Header Fields Too Large"
NOT_IMPLEMENTED = b"501 Not Implemented"


def go_error(status_line: bytes) -> bytes:
    return b"HTTP/1.1 " + status_line + _GO_ERROR_HEADERS + status_line


@dataclass(slots=True)
class ConnectionLimits:
    """The listener's limits (``extserver.options.connections`` has their flags). 0 turns a
    timeout or cap off; ``tls_handshake_timeout`` None follows ``read_header_timeout``."""

    read_header_timeout: float = 32.0
    idle_timeout: float = 90.0
    max_header_bytes: int = 1 << 20
    tls_handshake_timeout: float | None = None
    max_connections: int = 0
    max_tls_handshakes: int = 256

    @property
    def handshake_timeout(self) -> float:
        t = self.read_header_timeout if self.tls_handshake_timeout is None else self.tls_handshake_timeout
        return t if t > 0 else 3600.0


def default_max_connections(open_files_limit: int) -> int:
    """The connection cap when none is given: the descriptor limit less a reserve for the
    storage, the audit log, client connections to the cluster and accepts in flight."""
    return max(16, open_files_limit - max(64, open_files_limit // 8))


def unsupported_transfer_encoding(request: web.BaseRequest) -> bool:
    """Go refuses any ``Transfer-Encoding`` but exactly one ``chunked`` (``gzip, chunked``,
    ``identity``, two header lines ...) with 501; aiohttp would decode the chunks and ignore
    the rest."""
    values = request.headers.getall("Transfer-Encoding", ())
    if not values:
        return False
    return len(values) != 1 or values[0].strip().lower() != "chunked"


class ConnectionTracker:
    """The open connections and handshakes in flight of one listener; applies the caps."""

    def __init__(self, limits: ConnectionLimits, loop: asyncio.AbstractEventLoop):
        self.limits = limits
        self.loop = loop
        self.connections: dict[HTTPConnection, None] = {}
        self.handshakes: dict[_Handshake, float] = {}  # insertion order = oldest first
        #: connections closed to make room (idle ones, stalled handshakes) / refused
        self.shed_idle = 0
        self.shed_handshakes = 0
        self.refused = 0

    @property
    def open(self) -> int:
        return len(self.connections) + len(self.handshakes)

    def admit(self, tls: bool) -> bool:
        """A connection was accepted: make room for it, or say it must be closed."""
        cap = self.limits.max_connections
        if cap and self.open >= cap:
            idle = [c for c in self.connections if c.idle]
            if not idle:
                self.refused += 1
                return False
            victim = min(idle, key=lambda c: c.last_activity)
            self.shed_idle += 1
            victim.drop()
        hs_cap = self.limits.max_tls_handshakes
        if tls and hs_cap and len(self.handshakes) >= hs_cap:
            oldest = next(iter(self.handshakes))
            self.handshakes.pop(oldest, None)
            self.shed_handshakes += 1
            oldest.abort()
        return True

    def close_handshakes(self) -> None:
        """At shutdown: handshakes in flight are not waited for."""
        for a in list(self.handshakes):
            a.abort()
        self.handshakes.clear()


class HTTPConnection(RequestHandler):
    """aiohttp's ``RequestHandler`` with Go's header timeout, header byte cap and the
    connection tracker (see the module doc)."""

    def __init__(self, manager: web.Server, tracker: ConnectionTracker, **kwargs):
        limits = tracker.limits
        line_cap = limits.max_header_bytes + 2 * HEADER_SLACK if limits.max_header_bytes else 1 << 30
        kwargs.update(keepalive_timeout=limits.idle_timeout or 1e9, max_line_size=line_cap,
                      max_field_size=line_cap, max_headers=line_cap // 4)
        super().__init__(manager, **kwargs)
        self._tracker = tracker
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._tail = b""  # the last bytes seen, to find a header end split across reads
        self._body = None  # the payload of the last request parsed, until its last byte came
        self.last_activity = tracker.loop.time()

    @property
    def idle(self) -> bool:
        """No request in progress and none begun: closing it loses nothing."""
        return self._between_requests() and self._header_bytes == 0

    def _between_requests(self) -> bool:
        """The next bytes are a request's headers (not a body, not pipelined behind one)."""
        if self._request_in_progress or self._messages or self._force_close:
            return False
        if self._body is not None:
            if not self._body.is_eof():
                return False
            self._body = None
        return True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._tracker.connections[self] = None
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self._tracker.connections.pop(self, None)
        super().connection_lost(exc)

    def _arm(self) -> None:
        t = self._tracker.limits.read_header_timeout
        if t > 0 and self._header_timer is None:
            self._header_timer = self._tracker.loop.call_later(t, self._header_timeout)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._between_requests():
            self.drop()

    def drop(self) -> None:
        """Close at once, without TLS's close_notify exchange: a peer that never reads
        must not keep the descriptor for the shutdown timeout."""
        self._disarm()
        self._tracker.connections.pop(self, None)
        if self.transport is not None:
            self.transport.abort()
        self.force_close()

    def data_received(self, data: bytes) -> None:
        reading_headers = self._between_requests()
        if reading_headers and data:
            self.last_activity = self._tracker.loop.time()
            self._arm()
            cap = self._tracker.limits.max_header_bytes
            if cap:
                window = self._tail + data
                end = window.find(b"\r\n\r\n")
                counted = len(data) if end < 0 else max(0, end + 4 - len(self._tail))
                self._header_bytes += counted
                self._tail = window[-3:] if end < 0 else b""
                if self._header_bytes > cap + HEADER_SLACK:
                    self._refuse(TOO_LARGE)
                    return
            else:
                self._header_bytes += len(data)
        super().data_received(data)
        if self._messages and reading_headers:  # headers complete: the handler takes over
            self._body = self._messages[-1][1]
            self._disarm()
            self._header_bytes = 0
            self._tail = b""

    def _refuse(self, status_line: bytes) -> None:
        self._disarm()
        self._tracker.connections.pop(self, None)
        if self.transport is not None:
            self.transport.write(go_error(status_line))
        self.force_close()


class _Handshake:
    """One accepted connection until its TLS handshake is done (or it is plain)."""

    __slots__ = ("sock", "task")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.task: asyncio.Task | None = None

    def abort(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()  # the loop closes the socket it was handed
        else:
            self.sock.close()


class LimitedSite(web.TCPSite):
    """aiohttp's ``TCPSite`` with its own accept loop (see the module doc): each accepted
    socket is admitted by the tracker, then ``loop.connect_accepted_socket`` runs its TLS
    handshake (timed; a handshake in flight is a task the tracker can cancel) and attaches
    an :class:`HTTPConnection`. No byte is read before the handshake starts."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, ssl_context: ssl.SSLContext | None,
                 limits: ConnectionLimits, backlog: int = 1024, reuse_address: bool = True,
                 reuse_port: bool = False):
        super().__init__(runner, host, port, backlog=backlog, reuse_address=reuse_address)
        self._reuse_port_flag = reuse_port  # the worker processes share the port (SO_REUSEPORT)
        self.tls_context = ssl_context
        self.limits = limits
        self.tracker: ConnectionTracker = None  # type: ignore[assignment]  # set by start()
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task | None = None

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        self.tracker = ConnectionTracker(self.limits, loop)
        infos = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, addr = infos[0]
        lsock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if self._reuse_address:
                lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self._reuse_port_flag:
                lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:  # "::" is IPv6 only, as asyncio's create_server binds it
                lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            lsock.bind(addr)
            lsock.listen(self._backlog)
        except OSError:
            lsock.close()
            raise
        lsock.setblocking(False)
        self._listener = lsock
        self._bound_port = lsock.getsockname()[1]
        self._accepting = loop.create_task(self._accept_loop(lsock))

    async def _accept_loop(self, lsock: socket.socket) -> None:
        loop = self.tracker.loop
        while True:
            try:
                sock, _ = await loop.sock_accept(lsock)
            except asyncio.CancelledError:
                raise
            except OSError as e:  # EMFILE and friends: back off as asyncio's own server does
                log.warning("accept failed: %s", e.strerror or e)
                await asyncio.sleep(1.0)
                continue
            self._admit(sock)

    def _admit(self, sock: socket.socket) -> None:
        tracker = self.tracker
        tls = self.tls_context is not None
        if not tracker.admit(tls):
            sock.close()
            return
        hs = _Handshake(sock)
        if tls:
            tracker.handshakes[hs] = tracker.loop.time()
        hs.task = tracker.loop.create_task(self._attach(hs))

    async def _attach(self, hs: _Handshake) -> None:
        tracker = self.tracker
        server = self._runner.server
        try:
            if server is None:  # shutting down
                hs.sock.close()
                return
            kwargs = server._kwargs  # the application's handler_args, as aiohttp's Server passes them
            await tracker.loop.connect_accepted_socket(
                lambda: HTTPConnection(server, tracker, loop=tracker.loop, **kwargs), hs.sock,
                ssl=self.tls_context,
                ssl_handshake_timeout=tracker.limits.handshake_timeout if self.tls_context else None,
                ssl_shutdown_timeout=SHUTDOWN_TIMEOUT if self.tls_context else None)
        except (OSError, asyncio.TimeoutError, asyncio.CancelledError):
            hs.sock.close()  # refused, timed out, shed or gone: nothing to answer
        finally:
            tracker.handshakes.pop(hs, None)

    async def stop(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            self._accepting = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self.tracker is not None:
            self.tracker.close_handshakes()
        self._runner._unreg_site(self)
