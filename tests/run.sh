#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need (etcd, Prometheus,
# podman and debootstrap from Debian, the package with its test extra in a venv of its own, a real
# helm v3), then runs pytest from that venv.
#
# The venv is used rather than the interpreter's own site-packages because Debian's python3
# refuses `pip install` (PEP 668, externally-managed-environment), and because only a venv
# shows that the `test` extra really lists what the tests import.
#
# Environment:
#   EXTSERVER_VENV  the venv to create or reuse (default: .venv in the repo)
#   PYTHON          the interpreter the venv is made from (default: python3)
# The venv is reused while it is current: `.[test]` is installed again only when
# pyproject.toml or the base interpreter changed (a stamp file in the venv records both).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

apt_packages=()
command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1 || apt_packages+=(etcd-server etcd-client)
# The image tests build and run the container with podman (runc: crun fails on hybrid cgroups).
command -v podman >/dev/null 2>&1 || apt_packages+=(podman)
command -v runc >/dev/null 2>&1 || apt_packages+=(runc)
command -v debootstrap >/dev/null 2>&1 || apt_packages+=(debootstrap)
command -v prometheus >/dev/null 2>&1 || apt_packages+=(prometheus)  # the Prometheus adapter tests run a real one
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || apt_packages+=(python3-venv)
if [ "${#apt_packages[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

VENV="${EXTSERVER_VENV:-$PWD/.venv}"
stamp="$(cat pyproject.toml <("$PYTHON" -c 'import sys; print(sys.version, sys.executable)') | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c '' 2>/dev/null; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$VENV/.extserver-test-stamp" 2>/dev/null)" != "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
  echo "$stamp" > "$VENV/.extserver-test-stamp"
fi

export PATH="$VENV/bin:$PATH"
PYTHON="$VENV/bin/python" HELM_INSTALL_DIR="${HELM_INSTALL_DIR:-$VENV/bin}" bash .ci/install-helm.sh
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
