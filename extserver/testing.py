"""A test kit for the authors of API groups: a pytest plugin that starts a real extserver for
your groups (real TLS, a temporary data dir, local mode) and hands you a kubeconfig and a
configured Python ``kubernetes`` client.

Installed with extserver (the ``pytest11`` entry point ``extserver``), so in a project that
depends on extserver::

    # pytest.ini / pyproject.toml [tool.pytest.ini_options]
    extserver_api_modules = my_pkg.my_group

    def test_create(extserver):
        api = extserver.dynamic().resources.get(api_version="demo.extserver.io/v1", kind="Widget")
        api.create(body={...}, namespace="default")

Fixtures:

- ``extserver`` (session): one server for ``extserver_api_modules`` (ini option, one module
  per line) with ``extserver_args`` (extra ``serve`` flags); a :class:`RunningServer`.
- ``extserver_factory`` (session): ``extserver_factory(api_modules, args=...)`` starts another
  server (stopped at the end of the session), for tests that need their own flags.

Outside pytest, :func:`start_server` does the same and :meth:`RunningServer.stop` stops it.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import pytest

__all__ = ["RunningServer", "start_server"]

_LISTENING = re.compile(r" on (https://[\d.]+:\d+)")


@dataclass
class RunningServer:
    """One ``extserver serve`` process in local mode, listening on 127.0.0.1."""

    proc: subprocess.Popen
    url: str
    data_dir: Path
    output: list[str] = field(default_factory=list)
    _owns_data_dir: bool = True

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (``kubectl --kubeconfig`` or ``KUBECONFIG``)."""
        return self.data_dir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "certs" / "apiserver-ca.crt"

    @property
    def client_cert(self) -> tuple[str, str]:
        """(certificate, key) files of the admin, for ``requests``' ``cert=``."""
        return str(self.data_dir / "admin.crt"), str(self.data_dir / "admin.key")

    def api_client(self):
        """A ``kubernetes.client.ApiClient`` configured from :attr:`kubeconfig`."""
        from kubernetes import config
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def dynamic(self):
        """A ``kubernetes.dynamic.DynamicClient`` over :meth:`api_client`."""
        from kubernetes.dynamic import DynamicClient
        return DynamicClient(self.api_client())

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (graceful shutdown), SIGKILL after ``timeout``; returns the exit code."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return self.proc.returncode


def _ready(url: str, ca: Path, cert: tuple[str, str]) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(*cert)
    try:
        with urllib.request.urlopen(url + "/readyz", context=ctx, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def start_server(api_modules: Iterable[str] = (), *, args: Iterable[str] = (), bundled_groups: bool = False,
                 data_dir: str | Path | None = None, cwd: str | Path | None = None,
                 timeout: float = 60.0) -> RunningServer:
    """Start ``extserver serve`` for ``api_modules`` (the bundled groups too with
    ``bundled_groups``) on a free port of 127.0.0.1, in ``cwd`` (default: the current
    directory, so a module there is found), and wait until ``/readyz`` answers 200."""
    owns = data_dir is None
    data = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="extserver-test-"))
    cmd = [sys.executable, "-m", "extserver", "serve", "--bind-address", "127.0.0.1", "--secure-port", "0",
           "--data-dir", str(data)]
    for m in api_modules:
        cmd += ["--api-module", m]
    if api_modules and not bundled_groups:
        cmd.append("--no-bundled-groups")
    cmd += list(args)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=str(cwd or os.getcwd()), env=dict(os.environ, PYTHONUNBUFFERED="1"))
    output: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            m = _LISTENING.search(line)
            if m and not url:
                url.append(m.group(1))
                found.set()
        found.set()

    threading.Thread(target=read, daemon=True).start()
    server = None
    if found.wait(timeout) and url:
        server = RunningServer(proc, url[0], data, output, owns)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if _ready(server.url, server.ca_file, server.client_cert):
                return server
            time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    if owns:
        shutil.rmtree(data, ignore_errors=True)
    raise RuntimeError("extserver did not become ready:\n" + "".join(output[-40:]))


# --- the pytest plugin ------------------------------------------------------------------
def pytest_addoption(parser) -> None:
    parser.addini("extserver_api_modules", "modules the 'extserver' fixture serves (one per line)",
                  type="linelist", default=[])
    parser.addini("extserver_args", "extra 'extserver serve' flags for the 'extserver' fixture",
                  type="args", default=[])


@pytest.fixture(scope="session")
def extserver_factory():
    """``extserver_factory(api_modules, args=(), bundled_groups=False)`` → a started
    :class:`RunningServer`; every server it started is stopped at the end of the session."""
    started: list[RunningServer] = []

    def factory(api_modules: Iterable[str] = (), **kw) -> RunningServer:
        srv = start_server(api_modules, **kw)
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()


@pytest.fixture(scope="session")
def extserver(request, extserver_factory) -> RunningServer:
    """One server for the session, serving the ini option ``extserver_api_modules``."""
    modules = request.config.getini("extserver_api_modules")
    return extserver_factory(modules, args=request.config.getini("extserver_args"),
                             bundled_groups=not modules)
