"""A real Prometheus (Debian's ``prometheus`` binary) on 127.0.0.1 scraping a small exporter
that the test runs in-process with ``prometheus_client``, for the Prometheus adapter tests
and its benchmark.

The exporter's counters grow linearly with time (``rate`` gives a steady per-pod value);
gauges are fixed numbers. Prometheus gets a config the test writes, a TSDB in a temp dir,
a 1 s scrape interval and a query log, and is stopped by its PID. The query log is how a
test learns the exact query and evaluation time the adapter used, so it can ask
Prometheus the same question itself and compare the answers exactly."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Family:
    """One metric family: ``kind`` counter (value = per-second rate x seconds since start)
    or gauge (value as given); ``series`` maps a label tuple to the rate or value."""

    name: str
    kind: str
    labels: tuple[str, ...]
    series: dict[tuple[str, ...], float] = field(default_factory=dict)
    help: str = "test series"


class Exporter:
    def __init__(self, families: list[Family]):
        self.families = families
        self.t0 = time.time() - 1000.0  # counters start well above zero
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self.server = None
        self.port = 0

    def collect(self):
        now = time.time()
        for f in self.families:
            base = f.name[:-len("_total")] if f.kind == "counter" and f.name.endswith("_total") else f.name
            fam = (CounterMetricFamily(base, f.help, labels=list(f.labels)) if f.kind == "counter"
                   else GaugeMetricFamily(f.name, f.help, labels=list(f.labels)))
            for lv, v in f.series.items():
                fam.add_metric(list(lv), v * (now - self.t0) if f.kind == "counter" else v)
            yield fam

    def start(self) -> "Exporter":
        self.port = free_port()
        self.server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _serve_in_child(families: list[Family], port: int) -> None:
    ex = Exporter(families)
    ex.port = port
    ex.server, thread = start_http_server(port, addr="127.0.0.1", registry=ex.registry)
    thread.join()


class ExporterProcess:
    """The exporter in a child process (a benchmark's numbers must not include the GIL time
    of rendering thousands of series on every scrape)."""

    def __init__(self, families: list[Family]):
        import multiprocessing
        self.port = free_port()
        self.proc = multiprocessing.get_context("fork").Process(target=_serve_in_child, args=(families, self.port),
                                                                daemon=True)

    def start(self) -> "ExporterProcess":
        self.proc.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the exporter process did not listen")

    def stop(self) -> None:
        if self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.join(10)


class Prometheus:
    """The real Prometheus server process."""

    def __init__(self, workdir: Path, targets: list[str], *, scrape_interval: str = "1s",
                 tls: dict[str, str] | None = None, basic_auth: tuple[str, str] | None = None):
        """``tls``: serve HTTPS with ``cert_file``/``key_file`` (and require a client
        certificate issued by ``client_ca_file`` when given); ``basic_auth``: require this
        (user, password) — both through Prometheus's own web config."""
        self.tls = tls
        self.basic_auth = basic_auth
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.targets = targets
        self.scrape_interval = scrape_interval
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.query_log = self.dir / "queries.log"
        self.log = self.dir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _web_args(self) -> list[str]:
        web: dict = {}
        if self.tls:
            tls = {"cert_file": self.tls["cert_file"], "key_file": self.tls["key_file"]}
            if self.tls.get("client_ca_file"):
                tls.update(client_ca_file=self.tls["client_ca_file"], client_auth_type="RequireAndVerifyClientCert")
            web["tls_server_config"] = tls
        if self.basic_auth:
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import crypt  # bcrypt through the system's libcrypt, as Prometheus wants it
            user, password = self.basic_auth
            web["basic_auth_users"] = {user: crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))}
        if not web:
            return []
        path = self.dir / "web.yml"
        path.write_text(json.dumps(web))
        return [f"--web.config.file={path}"]

    def _get(self, path: str, **kw) -> requests.Response:
        if self.basic_auth:
            kw["auth"] = self.basic_auth
        if self.tls:
            kw["verify"] = self.tls["ca_file"]
            if self.tls.get("client_ca_file"):
                kw["cert"] = (self.tls["client_cert"], self.tls["client_key"])
        return requests.get(self.url + path, **kw)

    def _ready(self) -> bool:
        return self._get("/-/ready", timeout=1).status_code == 200

    def write_config(self) -> Path:
        cfg = {"global": {"scrape_interval": self.scrape_interval, "evaluation_interval": "15s",
                          "query_log_file": str(self.query_log)},
               "scrape_configs": [{"job_name": "test", "static_configs": [{"targets": self.targets}]}]}
        path = self.dir / "prometheus.yml"
        path.write_text(json.dumps(cfg))  # JSON is YAML
        return path

    def start(self, timeout: float = 60.0) -> "Prometheus":
        cfg = self.write_config()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={self.dir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn", *self._web_args()],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("prometheus exited:\n" + self.log.read_text()[-3000:])
            try:
                if self._ready():
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("prometheus never became ready:\n" + self.log.read_text()[-3000:])

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the process keeps its socket but answers nothing (a hung Prometheus)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    # --- asking Prometheus directly ------------------------------------------------------
    def query(self, q: str, at: float | None = None) -> list[dict]:
        params = {"query": q}
        if at is not None:
            params["time"] = f"{at:.3f}"
        r = self._get("/api/v1/query", params=params, timeout=10)
        r.raise_for_status()
        return r.json()["data"]["result"]

    def wait_for(self, q: str, n: int, timeout: float = 60.0) -> list[dict]:
        """Until ``q`` returns at least ``n`` series (scrapes have landed)."""
        deadline = time.monotonic() + timeout
        res: list[dict] = []
        while time.monotonic() < deadline:
            res = self.query(q)
            if len(res) >= n:
                return res
            time.sleep(0.2)
        raise AssertionError(f"{q!r} gave {len(res)} series, want {n}")

    def logged_queries(self) -> list[tuple[str, float]]:
        """(query, evaluation time) of every instant query in the query log."""
        out = []
        if not self.query_log.exists():
            return out
        for line in self.query_log.read_text().splitlines():
            try:
                d = json.loads(line)
            except ValueError:
                continue
            p = d.get("params") or {}
            if p.get("step", 0) == 0 and "query" in p and p.get("end"):
                out.append((p["query"], _rfc3339(p["end"])))
        return out


def _rfc3339(s: str) -> float:
    import datetime as _dt
    s = s.replace("Z", "+00:00")
    if "." in s:
        head, rest = s.split(".", 1)
        frac = "".join(ch for ch in rest if ch.isdigit())
        tz = rest[len(frac):]
        s = f"{head}.{(frac + '000000')[:6]}{tz}"
    return _dt.datetime.fromisoformat(s).timestamp()


class PromStack:
    """Exporter + Prometheus, started together, stopped in reverse."""

    def __init__(self, workdir: Path, families: list[Family], *, scrape_interval: str = "1s",
                 exporter_process: bool = False):
        self.exporter = (ExporterProcess if exporter_process else Exporter)(families).start()
        self.prometheus = Prometheus(workdir, [f"127.0.0.1:{self.exporter.port}"], scrape_interval=scrape_interval)

    def start(self) -> "PromStack":
        self.prometheus.start()
        return self

    def stop(self) -> None:
        self.prometheus.stop()
        self.exporter.stop()
