#!/usr/bin/env bash
# Make (or reuse) a Debian base image with python3 + venv for building the extserver image
# where no registry is reachable: debootstrap from the machine's apt mirror, then
# `podman import`. Prints the image name on stdout; progress goes to stderr.
#
# The rootfs tarball is cached under $EXTSERVER_CACHE_DIR (default /var/cache/extserver-test,
# else ~/.cache/extserver-test), keyed by every debootstrap input, so a second run (or a
# wiped podman store) costs a `podman import` instead of a two-minute debootstrap.
#
#   SUITE (bookworm)  MIRROR (from /etc/apt/sources*)  PODMAN (podman)
set -euo pipefail

SUITE="${SUITE:-bookworm}"
VARIANT=minbase
INCLUDE=python3,python3-venv,ca-certificates
PODMAN="${PODMAN:-podman}"
ARCH="$(dpkg --print-architecture)"

if [ -z "${MIRROR:-}" ]; then
  # First Debian (not -security) URI of the apt sources, deb822 or one-line format.
  MIRROR="$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -oE '(URIs:|^deb) +https?://[^ ]+' | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)"
  MIRROR="${MIRROR:-http://deb.debian.org/debian}"
fi

key="$(printf '%s\n' "$SUITE" "$VARIANT" "$INCLUDE" "$MIRROR" "$ARCH" | sha256sum | cut -c1-12)"
image="localhost/extserver-debian-base:${SUITE}-${key}"

if $PODMAN image exists "$image"; then
  echo "$image"
  exit 0
fi

cache="${EXTSERVER_CACHE_DIR:-/var/cache/extserver-test}"
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/extserver-test"
  mkdir -p "$cache"
fi
tarball="$cache/debian-${SUITE}-${key}.tar"

if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { echo "debian-base-image: debootstrap is not installed (apt-get install -y debootstrap)" >&2; exit 1; }
  root="$(mktemp -d "$cache/rootfs.XXXXXX")"
  trap 'rm -rf "$root" "$tarball.part"' EXIT
  echo "debian-base-image: debootstrap $SUITE from $MIRROR (cached as $tarball)" >&2
  debootstrap --variant="$VARIANT" --include="$INCLUDE" "$SUITE" "$root" "$MIRROR" >&2
  # The package lists and caches are not needed at run time.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar --numeric-owner -C "$root" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
fi

$PODMAN import --change 'CMD ["/bin/bash"]' "$tarball" "$image" >&2
echo "$image"
