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


def test_api_module_found_in_the_current_directory():
    """``extserver serve --api-module mod`` (the installed console script) imports ``mod.py``
    from the directory it runs in, as ``python -m`` would."""
    assert EXT, "the extserver console script is not installed"
    data = new_tmp_dir("extserver-cwdmod-")
    work = new_tmp_dir("extserver-cwdmod-src-")
    shutil.copy(REPO / "tests" / "e2e" / "widgets.py", work / "my_widgets.py")
    srv = ServerProcess(data, cwd=work)
    srv.command = lambda: [EXT, "serve", "--bind-address", "127.0.0.1", "--secure-port", "0", "--data-dir",
                           str(data), "--api-module", "my_widgets"]
    srv.start()
    try:
        r = API(srv).get("/apis/demo.extserver.io/v1")
        assert r.status_code == 200 and r.json()["kind"] == "APIResourceList", r.text
    finally:
        srv.stop()
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def test_help_says_where_api_modules_come_from():
    out = " ".join(run_cli("serve", "--help").stdout.split())
    assert "current directory (mod.py or mod/ there)" in out


def test_every_flag_has_help_and_its_default():
    """``serve --help``: each flag says what it does, and each flag with a default shows it."""
    from extserver.options import build_parser
    parser = build_parser()
    serve = next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith("serve"))
    fmt = serve._get_formatter()
    missing, no_default = [], []
    for action in serve._actions:
        if not action.option_strings or action.dest == "help":
            continue
        if not action.help:
            missing.append(action.option_strings[-1])
            continue
        d = action.default
        if d not in (None, False, [], "") or (isinstance(d, (int, float)) and d is not False and d == 0):
            if "default" not in fmt._get_help_string(action).lower():
                no_default.append(action.option_strings[-1])
    assert not missing, f"flags without help: {missing}"
    assert not no_default, f"flags whose default is not shown: {no_default}"
    out = " ".join(run_cli("serve", "--help").stdout.split())
    assert "--request-timeout DURATION the default deadline" in out and "(default: 60s)" in out


def test_cli_errors_share_one_prefix():
    parse_error = run_cli("serve", "--secure-port", "abc")
    run_error = run_cli("serve", "--bind-address", "not-an-ip", "--data-dir", "/tmp/extserver-cli-test")
    for p in (parse_error, run_error):
        assert p.returncode == 2 and p.stderr.startswith("extserver: error: "), p.stderr


def test_json_log_format_every_line_is_json():
    """With ``--log-format=json`` every line the server prints, start-up lines included, is JSON."""
    import json
    data = new_tmp_dir("extserver-jsonlog-")
    srv = ServerProcess(data, extra_args=["--log-format", "json", "-v", "3"])
    srv.start()
    try:
        API(srv).get("/apis/wardle.example.com/v1beta1")
        API(srv).get("/apis/wardle.example.com/v1beta1/namespaces/x/flunders/missing")
    finally:
        srv.stop()
        shutil.rmtree(data, ignore_errors=True)
    lines = [line for line in srv.output if line.strip()]
    assert len(lines) >= 3
    for line in lines:
        doc = json.loads(line)  # raises on a plain-text line
        assert "msg" in doc
    assert any("admin kubeconfig" in json.loads(line)["msg"] for line in lines)


@pytest.fixture(scope="module")
def pem_files(tmp_path_factory):
    from extserver.server import certs
    d = tmp_path_factory.mktemp("pem")
    ca = certs.new_ca("test-ca")
    a, b = certs.issue(ca, "a", server=True), certs.issue(ca, "b", server=True)
    files = {"cert": a.cert_pem, "key": a.key_pem, "other-key": b.key_pem, "garbage": b"not a pem\n",
             "empty": b"", "truncated": a.key_pem[:120]}
    for name, data in files.items():
        (d / f"{name}.pem").write_bytes(data)
    return d


@pytest.mark.parametrize("flags,needle", [
    ({"--tls-cert-file": "garbage", "--tls-private-key-file": "key"},
     "--tls-cert-file {d}/garbage.pem: no PEM block found (expected -----BEGIN CERTIFICATE-----)"),
    ({"--tls-cert-file": "key", "--tls-private-key-file": "key"},
     "--tls-cert-file {d}/key.pem: holds a PEM 'PRIVATE KEY' block, not a CERTIFICATE"),
    ({"--tls-cert-file": "cert", "--tls-private-key-file": "empty"},
     "--tls-private-key-file {d}/empty.pem: the file is empty"),
    ({"--tls-cert-file": "cert", "--tls-private-key-file": "truncated"},
     "--tls-private-key-file {d}/truncated.pem: a PEM block has no matching END line"),
    ({"--tls-cert-file": "cert", "--tls-private-key-file": "other-key"},
     "--tls-private-key-file {d}/other-key.pem: the private key does not match the certificate in {d}/cert.pem"),
    ({"--client-ca-file": "garbage"}, "--client-ca-file {d}/garbage.pem: no PEM block found"),
    ({"--etcd-cafile": "key"}, "--etcd-cafile {d}/key.pem: holds a PEM 'PRIVATE KEY' block, not a CERTIFICATE"),
])
def test_bad_pem_file_is_named_with_what_is_wrong(pem_files, flags, needle):
    args = ["serve", "--data-dir", str(pem_files / "data"), "--bind-address", "127.0.0.1", "--secure-port", "0"]
    for flag, name in flags.items():
        args += [flag, str(pem_files / f"{name}.pem")]
    p = run_cli(*args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert lines[-1].startswith("extserver: error: " + needle.format(d=pem_files)), p.stderr
    assert "Traceback" not in p.stderr
