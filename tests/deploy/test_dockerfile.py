"""Structure of the Dockerfile, read from the file (and so checked even where podman cannot
run). The image itself is built, run and driven by test_image.py."""
from __future__ import annotations

import re
import tomllib

import yaml

from .conftest import CHART_DIR, REPO_ROOT

DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_multi_stage_with_slim_python_base():
    stages = _stages()
    assert len(stages) >= 2
    args = dict(a[1].split("=", 1) for a in _instructions() if a[0] == "ARG" and "=" in a[1])
    base = args["BASE_IMAGE"]  # the public default; the tests pass a local Debian base
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", base)
    for stage in stages:
        assert stage[0][1].split()[0] == "${BASE_IMAGE}"
    python_req = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python_req == ">=3.11"


def test_final_stage_runs_as_non_root_without_build_tools():
    final = _stages()[-1]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the final stage must set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so runAsNonRoot can check it
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    for tool in ("build-essential", "gcc", "apt-get install", "pip install"):
        assert tool not in runs
    copies = [rest for keyword, rest in final if keyword == "COPY"]
    assert copies and all(c.startswith("--from=build") for c in copies)
    entry = [rest for keyword, rest in final if keyword == "ENTRYPOINT"]
    assert entry == ['["extserver"]']


def test_image_user_matches_the_chart_security_context():
    final = _stages()[-1]
    uid, gid = [rest for keyword, rest in final if keyword == "USER"][-1].split(":")
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsGroup"] == int(gid)
    assert values["server"]["command"][0] == "extserver"
    assert f"EXPOSE {values['server']['securePort']}" in DOCKERFILE


def test_image_tag_scheme_matches_package_and_chart():
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["appVersion"] == version
    assert re.search(rf"ARG VERSION={re.escape(version)}\n", DOCKERFILE)
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["image"]["repository"] == "ghcr.io/extserver/extserver"


def test_dockerignore_keeps_the_context_small():
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    assert {".git", "tests", "charts", "manifests", "docs"} <= ignored
    assert "extserver" not in ignored and "pyproject.toml" not in ignored
    assert "wheelhouse" not in ignored  # the offline build installs from it
