#!/usr/bin/env bash
# Builds the local Debian bookworm base image (python3, venv, CA certificates) with mmdebstrap and
# `podman import`, for machines that cannot pull base images from a registry.
#
#   bash hack/images/build-base.sh        # prints the image name, e.g. elastrain/base-bookworm:3f2a...
#
# The tag is a content hash of this script, so the image is built once per machine and rebuilt when
# the package list changes. Debian packages come from the host's apt sources.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/containers.conf}"
PACKAGES="python3,python3-venv,ca-certificates"
TAG="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)"
IMAGE="elastrain/base-bookworm:$TAG"
RUNTIME="${CONTAINER_RUNTIME:-podman}"

log() { echo "[build-base] $*" >&2; }

if "$RUNTIME" image exists "$IMAGE" 2>/dev/null || "$RUNTIME" image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "$IMAGE"
    exit 0
fi

if ! command -v mmdebstrap >/dev/null; then
    log "installing mmdebstrap from Debian's packages"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap >&2
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
log "building $IMAGE (mmdebstrap: Debian bookworm minbase + $PACKAGES)"
start=$(date +%s)
# The host's apt sources, so the mirror is whatever this machine already uses.
nice -n 10 mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$WORK/rootfs.tar" >&2
"$RUNTIME" import --change 'CMD ["/bin/bash"]' "$WORK/rootfs.tar" "$IMAGE" >/dev/null
log "built $IMAGE in $(($(date +%s) - start)) s"
echo "$IMAGE"
