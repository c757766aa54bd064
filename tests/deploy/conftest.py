"""Shared helpers for the deploy tests: the real helm binary, rendering, validation.

helm is required, not optional: CI installs it with .ci/install-helm.sh, and a machine
without it must fail these tests rather than skip them.
"""
from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "extserver"
CI_VALUES_DIR = CHART_DIR / "ci"
RELEASE = "t"
NAMESPACE = "ns"
FULLNAME = "t-extserver"
SERVICE_DNS = f"{FULLNAME}.{NAMESPACE}.svc"

#: Value sets rendered by the tests: None is the chart's defaults, the others are the files
#: in charts/extserver/ci/ (the chart-testing convention).
VALUE_SETS: list[str | None] = [None] + sorted(p.name for p in CI_VALUES_DIR.glob("*-values.yaml"))


def helm_binary() -> str:
    path = shutil.which("helm")
    if path is None:
        pytest.fail("helm is not on PATH: run .ci/install-helm.sh (the deploy tests need a real helm v3)")
    version = subprocess.run([path, "version", "--short"], capture_output=True, text=True, timeout=60)
    if not version.stdout.startswith("v3."):
        pytest.fail(f"{path} is not Helm v3: {version.stdout or version.stderr}")
    return path


@pytest.fixture(scope="session")
def helm() -> str:
    return helm_binary()


def run_helm_template(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [helm, "template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def values_args(value_set: str | None) -> list[str]:
    return [] if value_set is None else ["--values", str(CI_VALUES_DIR / value_set)]


@pytest.fixture(scope="session")
def render(helm: str) -> Callable[..., list[dict[str, Any]]]:
    """render(value_set, *extra_args) -> rendered objects (cached per arguments)."""
    cache: dict[tuple[str | None, tuple[str, ...]], list[dict[str, Any]]] = {}

    def _render(value_set: str | None = None, *extra: str) -> list[dict[str, Any]]:
        key = (value_set, extra)
        if key not in cache:
            proc = run_helm_template(helm, *values_args(value_set), *extra)
            assert proc.returncode == 0, proc.stderr
            cache[key] = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
        return cache[key]

    return _render


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def secret_bytes(secret: dict[str, Any], key: str) -> bytes:
    return base64.b64decode(secret["data"][key])


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every Deployment and StatefulSet."""
    return [(o["metadata"]["name"], o["spec"]["template"]["spec"])
            for o in objects if o["kind"] in ("Deployment", "StatefulSet")]


#: Numbers measured by the deploy tests (the image size), printed after the run.
MEASURED: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    for line in MEASURED:
        terminalreporter.write_line(line)
