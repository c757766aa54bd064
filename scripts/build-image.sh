#!/usr/bin/env bash
# Build (and optionally push) the extserver image the Helm chart runs:
#   <registry>/extserver:<version>, version from pyproject.toml = the chart's appVersion.
#
# Usage: scripts/build-image.sh [--registry REG] [--tag TAG] [--base IMAGE]
#                               [--offline | --debian-base] [--push]
#   --registry REG   image repository prefix (default ghcr.io/extserver); the chart's
#                    image.repository is REG/extserver
#   --tag TAG        image tag (default: the package version)
#   --base IMAGE     BASE_IMAGE build argument (default: the Dockerfile's python:3.11-slim)
#   --offline        build the wheels on this machine (pip wheel, into wheelhouse/) and
#                    install only those in the image: no index is used inside the build
#   --debian-base    base made locally with debootstrap (scripts/debian-base-image.sh);
#                    implies --offline. For machines that reach no container registry.
#   --push           push the image and print its digest (for image.digest in the chart)
#   --print-ref      print the image reference that would be built, and build nothing
# Environment: CONTAINER_ENGINE (podman if installed, else docker), PYTHON (python3; its
# major.minor must be the base image's for --offline wheels).
# stdout: the image reference (then "digest: sha256:..." with --push); progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

registry=ghcr.io/extserver
tag=""
base=""
offline=false
debian_base=false
push=false
print_ref=false
while [ $# -gt 0 ]; do
  case "$1" in
    --registry) registry="${2:?--registry needs a value}"; shift 2 ;;
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    --base) base="${2:?--base needs a value}"; shift 2 ;;
    --offline) offline=true; shift ;;
    --debian-base) debian_base=true; offline=true; shift ;;
    --push) push=true; shift ;;
    --print-ref) print_ref=true; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image: unknown argument: $1" >&2; exit 2 ;;
  esac
done

PYTHON="${PYTHON:-python3}"
if [ -z "${CONTAINER_ENGINE:-}" ]; then
  if command -v podman >/dev/null 2>&1; then CONTAINER_ENGINE=podman
  elif command -v docker >/dev/null 2>&1; then CONTAINER_ENGINE=docker
  else echo "build-image: neither podman nor docker is installed" >&2; exit 1; fi
fi
version="$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
image="${registry%/}/extserver:${tag:-$version}"
if $print_ref; then echo "$image"; exit 0; fi

if $debian_base && [ -z "$base" ]; then
  base="$(PODMAN="$CONTAINER_ENGINE" scripts/debian-base-image.sh)"
fi

build_args=(--build-arg "VERSION=$version" --build-arg "OFFLINE=$offline")
[ -n "$base" ] && build_args+=(--build-arg "BASE_IMAGE=$base")

mkdir -p wheelhouse
if $offline && [ -n "$base" ]; then
  # Wheels built here must fit the base's interpreter (compiled wheels are per minor version).
  want="$($CONTAINER_ENGINE run --rm --entrypoint python3 "$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  have="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  if [ "$want" != "$have" ]; then
    echo "build-image: --offline needs the host's Python ($PYTHON is $have) to be the base's ($base has $want): set PYTHON" >&2
    exit 1
  fi
fi
if $offline; then
  # Dependency wheels are reused while pyproject.toml is unchanged; the package's own wheel
  # is rebuilt every time (its source changes without pyproject.toml changing).
  stamp="$(cat pyproject.toml <("$PYTHON" -c 'import sys; print(sys.version_info[:2])') | sha256sum | cut -d' ' -f1)"
  if [ "$(cat wheelhouse/.stamp 2>/dev/null)" != "$stamp" ]; then
    echo "build-image: building the dependency wheels (pip wheel)" >&2
    rm -f wheelhouse/*.whl wheelhouse/.stamp
    "$PYTHON" -m pip wheel -q --disable-pip-version-check -w wheelhouse . >&2
    echo "$stamp" > wheelhouse/.stamp
  else
    rm -f wheelhouse/extserver-*.whl
    "$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps -w wheelhouse . >&2
  fi
fi

echo "build-image: $CONTAINER_ENGINE build -t $image ${build_args[*]}" >&2
$CONTAINER_ENGINE build -t "$image" "${build_args[@]}" -f Dockerfile . >&2
# podman keeps the build stage as an untagged image; only the final image is needed.
$CONTAINER_ENGINE image prune -f --filter label=org.extserver.stage=build >/dev/null 2>&1 || true
size="$($CONTAINER_ENGINE image inspect --format '{{.Size}}' "$image")"
echo "build-image: $image: $((size / 1000000)) MB" >&2
echo "$image"

if $push; then
  $CONTAINER_ENGINE push "$image" >&2
  digest="$($CONTAINER_ENGINE image inspect --format '{{index .RepoDigests 0}}' "$image")"
  echo "digest: ${digest##*@}"
fi
