"""The command line: the README's run command serves, flags are grouped, bad values are one
line and exit 2, local mode reuses its certificates, and user groups load by module path."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.e2e.harness import API, REPO, ServerProcess, new_tmp_dir

EXT = shutil.which("extserver")


def readme_run_command() -> list[str]:
    text = (REPO / "README.md").read_text()
    m = re.search(r"^\s+python3 -m venv \.venv && \.venv/bin/pip install \. && \.venv/bin/(extserver serve[^\n]*)$",
                  text, re.M)
    assert m, "the README must show the run command"
    return shlex.split(m.group(1))


def test_readme_run_command_serves():
    assert EXT, "the extserver console script is not installed"
    data = new_tmp_dir("extserver-readme-")
    cmd = [EXT] + readme_run_command()[1:] + ["--secure-port", "0", "--data-dir", str(data)]
    srv = ServerProcess(data)
    srv.command = lambda: cmd  # exactly the README's command, with a free port and a temp data dir
    srv.start()
    try:
        assert any("admin kubeconfig: " + str(data / "kubeconfig") in line for line in srv.output)
        r = API(srv).get("/apis/wardle.example.com/v1beta1")
        assert r.status_code == 200 and r.json()["kind"] == "APIResourceList"
        # only the local admin is accepted: no client certificate -> 401
        assert API(srv, cert=False).get("/apis/wardle.example.com/v1beta1").status_code == 401
    finally:
        assert srv.stop() == 0
        shutil.rmtree(data, ignore_errors=True)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "extserver.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=str(REPO))


@pytest.mark.parametrize("args,needle", [
    (["serve", "--secure-port", "abc"], "invalid port 'abc'"),
    (["serve", "--secure-port", "70000"], "out of range"),
    (["serve", "--storage-backend", "mysql"], "invalid choice: 'mysql'"),
    (["serve", "--bind-address", "not-an-ip", "--data-dir", "/tmp/extserver-cli-test"], "is not an IP address"),
    (["serve", "--request-timeout", "soon"], "invalid duration"),
    (["serve", "--tls-cert-file", "/nonexistent.crt", "--tls-private-key-file", "/nonexistent.key",
      "--data-dir", "/tmp/extserver-cli-test"], "no such file"),
    (["serve", "--api-module", "no.such.module", "--data-dir", "/tmp/extserver-cli-test"], "cannot import"),
    (["serve", "--storage-backend", "etcd3", "--data-dir", "/tmp/extserver-cli-test"], "--etcd-servers is required"),
    (["serve", "--no-such-flag"], "unrecognized arguments"),
])
def test_bad_flags_are_one_line_and_exit_2(args, needle):
    p = run_cli(*args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert "Traceback" not in p.stderr


def test_help_groups_flags():
    out = run_cli("serve", "--help").stdout
    for group in ("Generic flags", "Secure serving flags", "Storage flags", "Authentication flags",
                  "Authorization flags"):
        assert group in out
    assert "--requestheader-client-ca-file" in out and "--etcd-servers" in out


def test_local_mode_reuses_certificates_and_loads_user_groups():
    data = new_tmp_dir("extserver-reuse-")
    srv = ServerProcess(data, extra_args=["--api-module", "tests.e2e.widgets"])
    srv.start()
    first = (data / "certs" / "apiserver.crt").read_bytes(), (data / "admin.crt").read_bytes()
    api = API(srv)
    groups = [g["name"] for g in api.get("/apis").json()["groups"]]
    assert groups == ["demo.extserver.io", "wardle.example.com"]
    assert srv.stop() == 0
    srv.start()
    try:
        assert ((data / "certs" / "apiserver.crt").read_bytes(), (data / "admin.crt").read_bytes()) == first
        assert API(srv).get("/apis/demo.extserver.io/v1").status_code == 200
    finally:
        srv.stop()
        shutil.rmtree(data, ignore_errors=True)
