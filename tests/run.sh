#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need (etcd from Debian,
# Prometheus, the package with its test extras, a real helm v3), then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq etcd-server etcd-client >/dev/null
fi
if ! command -v prometheus >/dev/null 2>&1; then  # the Prometheus adapter tests run a real one
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq prometheus >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
bash .ci/install-helm.sh
exec python3 -m pytest -q -p no:cacheprovider "$@"
