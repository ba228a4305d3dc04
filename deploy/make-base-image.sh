#!/usr/bin/env bash
# Build a local Debian bookworm base image without pulling from a registry:
# debootstrap (from Debian's packages) into a temporary directory, then `podman import`.
#
#   deploy/make-base-image.sh [IMAGE]        # default IMAGE: localhost/debian:bookworm
#
# Needs root, debootstrap and podman (apt-get install debootstrap podman). About a minute.
# Skips the work when IMAGE already exists.
set -euo pipefail

image="${1:-localhost/debian:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if podman image exists "$image"; then
  echo "base image $image already present"
  exit 0
fi

rootfs="$(mktemp -d "${TMPDIR:-/var/tmp}/asr-rootfs.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm into $rootfs ..."
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
# Same trimming the official slim image does: no apt lists or caches in the base.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$image"
echo "base image $image created"
