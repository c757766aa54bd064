"""Start the real ``extserver serve`` process on 127.0.0.1 and talk to it over HTTPS with
the admin client certificate it created (local mode)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]


class ServerProcess:
    """One ``extserver serve`` process. Stopped by its PID."""

    def __init__(self, data_dir: Path, *, backend: str = "embedded", etcd_endpoints: list[str] | None = None,
                 extra_args: list[str] | None = None, port: int = 0, etcd_prefix: str | None = None,
                 cwd: Path | None = None):
        self.data_dir = Path(data_dir)
        self.backend = backend
        self.etcd_endpoints = etcd_endpoints or []
        self.extra_args = extra_args or []
        self.port = port
        self.etcd_prefix = etcd_prefix
        #: the directory the server runs in (default: the repository, so ``python -m`` finds it)
        self.cwd = Path(cwd) if cwd else REPO
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.output: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def ca(self) -> Path:
        return self.data_dir / "certs" / "apiserver-ca.crt"

    @property
    def client_cert(self) -> tuple[str, str]:
        return str(self.data_dir / "admin.crt"), str(self.data_dir / "admin.key")

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "extserver.cli", "serve", "--bind-address", "127.0.0.1",
               "--secure-port", str(self.port), "--data-dir", str(self.data_dir),
               "--storage-backend", self.backend]
        if self.backend == "etcd3":
            cmd += ["--etcd-servers", ",".join(self.etcd_endpoints)]
            if self.etcd_prefix:
                cmd += ["--etcd-prefix", self.etcd_prefix]
        return cmd + self.extra_args

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env, cwd=str(self.cwd))
        self.output = []
        found = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                m = re.search(r" on (https://[\d.]+:\d+)", line)
                if m and not self.url:
                    self.url = m.group(1)
                    self.port = int(self.url.rsplit(":", 1)[1])
                    found.set()
            found.set()

        self.url = ""
        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not found.wait(timeout) or not self.url:
            self.kill()
            raise RuntimeError("extserver did not start:\n" + "".join(self.output[-50:]))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.session().get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("extserver never became ready:\n" + "".join(self.output[-50:]))

    def session(self, cert: bool = True) -> requests.Session:
        s = requests.Session()
        s.trust_env = False  # REQUESTS_CA_BUNDLE / proxies from the environment must not apply
        s.verify = str(self.ca)
        if cert:
            s.cert = self.client_cert
        return s

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


class API:
    """A tiny typed client over a requests session."""

    def __init__(self, server: ServerProcess, *, cert: bool = True):
        self.server = server
        self.s = server.session(cert)
        self.base = server.url

    def req(self, method: str, path: str, body: Any = None, *, ctype: str = "application/json",
            headers: dict | None = None, params: dict | None = None, raw: bytes | None = None,
            stream: bool = False, timeout: float = 30.0) -> requests.Response:
        h = {"Accept": "application/json"}
        if headers:
            h.update(headers)
        data = raw
        if body is not None:
            import json
            data = json.dumps(body).encode()
        if data is not None:
            h["Content-Type"] = ctype
        return self.s.request(method, self.base + path, data=data, headers=h, params=params, stream=stream,
                              timeout=timeout)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.req("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.req("PUT", path, body, **kw)

    def patch(self, path, body=None, ctype="application/merge-patch+json", **kw):
        return self.req("PATCH", path, body, ctype=ctype, **kw)

    def delete(self, path, body=None, **kw):
        return self.req("DELETE", path, body, **kw)


FL_B = "/apis/wardle.example.com/v1beta1"
FL_A = "/apis/wardle.example.com/v1alpha1"


def flunder(name: str, *, version: str = "v1beta1", labels: dict | None = None, spec: dict | None = None,
            ns: str | None = None) -> dict:
    md: dict[str, Any] = {"name": name}
    if labels:
        md["labels"] = labels
    if ns:
        md["namespace"] = ns
    return {"apiVersion": f"wardle.example.com/{version}", "kind": "Flunder", "metadata": md,
            "spec": spec or {}}


def new_tmp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
