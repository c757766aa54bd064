"""The README's run command, verbatim, in a fresh copy of the sources: it makes its own venv,
installs the package there and serves, with the system's python3 (Debian's /usr/bin/python3
where there is one: the interpreter that refuses `pip install` outside a venv, PEP 668).

Only the port and the data directory are added, so that the test does not collide with
anything on 8443 or in the user's home. pip may use its cache; the venv is new each run.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import requests

from .conftest import REPO_ROOT

SYSTEM_PYTHON_DIR = "/usr/bin"


def readme_run_command() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in setup.splitlines() if line.startswith("    ")]
    assert len(commands) == 2, f"the README's set-up shows two commands (run, test): {commands}"
    assert commands[1] == "bash tests/run.sh"
    return commands[0]


def test_readme_run_command_works_from_a_fresh_copy(tmp_path):
    src = tmp_path / "extserver-src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, src / name)
    shutil.copytree(REPO_ROOT / "extserver", src / "extserver", ignore=shutil.ignore_patterns("__pycache__"))
    data = tmp_path / "data"
    command = readme_run_command() + f" --secure-port 0 --data-dir {data}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    if Path(SYSTEM_PYTHON_DIR, "python3").exists():
        env["PATH"] = SYSTEM_PYTHON_DIR + os.pathsep + env.get("PATH", "")
    proc = subprocess.Popen(["bash", "-c", command], cwd=src, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output: list[str] = []
    try:
        url = ""
        deadline = time.monotonic() + 600  # bounded: pip install of the dependencies
        assert proc.stdout is not None
        while not url and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            match = re.search(r" on (https://127\.0\.0\.1:\d+)", line)
            url = match.group(1) if match else ""
        assert url, "the README's command did not serve:\n" + "".join(output[-40:])
        venv_python = src / ".venv" / "bin" / "python"
        assert venv_python.exists()
        session = requests.Session()
        session.trust_env = False
        session.verify = str(data / "certs" / "apiserver-ca.crt")
        session.cert = (str(data / "admin.crt"), str(data / "admin.key"))
        answer = session.get(url + "/apis/wardle.example.com/v1beta1", timeout=30)
        assert answer.status_code == 200 and answer.json()["kind"] == "APIResourceList"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the session this test started: bash and the server
        proc.wait(timeout=60)
