"""``--workers N``: several processes serve one port (every core used).

The supervisor (the process ``extserver serve`` started) does what must happen once — flag
checks, local-mode certificates, the kubeconfig, the start-up lines — then forks the
workers before any event loop or thread exists. Each worker binds the port itself with
``SO_REUSEPORT`` (the kernel spreads new connections evenly over the workers' listeners by
a hash of the connection, where one shared listener would let whichever worker wakes first
take them) and runs the whole server: its own storage client and watch cache (as replicas
behind a Service do), TLS reloading, authentication caches and post-start hooks. The
supervisor keeps the port bound (not listening) so that port 0 names one free port for all.

* **Start.** The start-up lines are printed once every worker listens.
* **Stop.** SIGTERM/SIGINT to the supervisor goes to every worker, each drains as a single
  server does (``/readyz`` fails, the listener closes, watches end, requests in flight
  finish); the supervisor exits when all have, with the first non-zero code. A worker gets
  SIGTERM too if the supervisor dies (``PR_SET_PDEATHSIG``).
* **A worker that dies** from a signal (killed, out of memory) is started again — its
  clients reconnect, as to a restarted replica; more than ``MAX_RESTARTS`` within
  ``RESTART_WINDOW`` seconds stops the server with exit code 1. A worker that exits on its
  own (storage unreachable at start, a failed post-start hook) stops the server with its
  code: that is a configuration problem a restart does not mend.
* **Metrics.** Every worker answers scrapes of its own registry on a Unix socket in a
  private directory; the worker that serves ``/metrics`` sums every worker's exposition
  (:func:`~extserver.server.metrics.merge_expositions`), so a scrape sees the whole server.
"""
from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from .metrics import MetricsRegistry, merge_expositions

log = logging.getLogger("extserver")

MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
#: how long a scrape waits for another worker's metrics
PEER_TIMEOUT = 2.0
_PR_SET_PDEATHSIG = 1


class MetricsPeers:
    """This worker's metrics endpoint for the others, and the scrape of all of them."""

    def __init__(self, directory: Path, index: int, count: int):
        self.directory = directory
        self.index = index
        self.count = count
        self._server: asyncio.AbstractServer | None = None

    def _path(self, i: int) -> str:
        return str(self.directory / f"{i}.sock")

    async def start(self, registry: MetricsRegistry) -> None:
        async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                writer.write(registry.render().encode())
                await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        path = self._path(self.index)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by this worker's previous life
        self._server = await asyncio.start_unix_server(answer, path)
        registry.gather = self.gather

    async def _fetch(self, i: int) -> str:
        try:
            async with asyncio.timeout(PEER_TIMEOUT):
                reader, writer = await asyncio.open_unix_connection(self._path(i))
                try:
                    return (await reader.read()).decode()
                finally:
                    writer.close()
        except (OSError, TimeoutError):
            return ""  # restarting: its samples are missing from this scrape

    async def gather(self, own: str) -> str:
        others = await asyncio.gather(*(self._fetch(i) for i in range(self.count) if i != self.index))
        return merge_expositions([own, *others])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (without listening) ``host:port`` with ``SO_REUSEPORT``: port 0 becomes one free
    port that the workers then share. Raises OSError as ``bind`` does."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    """Forks ``count`` workers running ``worker(index, port, peers, ready_fd)`` (which
    returns an exit code and writes one byte to ``ready_fd`` once it listens) and watches
    over them (see the module docstring)."""

    def __init__(self, count: int, worker: Callable[[int, int, MetricsPeers, int], int]):
        self.count = count
        self.worker = worker
        self.children: dict[int, int] = {}  # pid -> worker index
        self.stopping = False
        self.code = 0
        self._restarts: list[float] = []

    def _spawn(self, index: int, port: int, peers_dir: Path, ready_w: int) -> None:
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            self.children[pid] = index
            return
        code = 1
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            _die_with_parent(parent)
            code = self.worker(index, port, MetricsPeers(peers_dir, index, self.count), ready_w)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - a worker never returns into the supervisor's code
            log.exception("worker %d failed", index)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _signal(self, signum: int, _frame) -> None:
        self.stopping = True
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _reaped(self, pid: int, status: int, respawn: Callable[[int], None]) -> None:
        index = self.children.pop(pid, None)
        if index is None:
            return
        if self.stopping:
            code = os.waitstatus_to_exitcode(status)
            if code > 0 and self.code == 0:
                self.code = code
            return
        if os.WIFSIGNALED(status):
            now = time.monotonic()
            self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW] + [now]
            if len(self._restarts) > MAX_RESTARTS:
                log.error("worker %d died (signal %d); more than %d restarts in %.0fs: stopping", index,
                          os.WTERMSIG(status), MAX_RESTARTS, RESTART_WINDOW)
                self.code = 1
                self._signal(signal.SIGTERM, None)
                return
            log.warning("worker %d (pid %d) died (signal %d); starting it again", index, pid, os.WTERMSIG(status))
            respawn(index)
            return
        code = os.waitstatus_to_exitcode(status)
        log.error("worker %d (pid %d) exited with code %d: stopping the server", index, pid, code)
        self.code = code or 1
        self._signal(signal.SIGTERM, None)

    def run(self, listener: socket.socket, on_listening: Callable[[int], None]) -> int:
        port = listener.getsockname()[1]
        peers_dir = Path(tempfile.mkdtemp(prefix="extserver-workers-"))
        ready_r, ready_w = os.pipe()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._signal)

        def respawn(index: int) -> None:
            self._spawn(index, port, peers_dir, ready_w)

        try:
            for i in range(self.count):
                respawn(i)
            listening = 0
            while self.children:
                if listening < self.count:
                    try:
                        readable, _, _ = select.select([ready_r], [], [], 0.2)
                    except InterruptedError:
                        readable = []
                    if readable:
                        listening += len(os.read(ready_r, 64))
                        if listening >= self.count and not self.stopping:
                            on_listening(port)
                else:
                    time.sleep(0.2)
                while self.children:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        self.children.clear()
                        break
                    if pid == 0:
                        break
                    self._reaped(pid, status, respawn)
        finally:
            os.close(ready_r)
            os.close(ready_w)
            listener.close()
            shutil.rmtree(peers_dir, ignore_errors=True)
        log.info("server stopped")
        return self.code
