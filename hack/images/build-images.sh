#!/usr/bin/env bash
# Builds elastrain's images: elastrain/operator and elastrain/trainer, tagged with the project's version
# (the chart's appVersion), the names the Helm chart and the examples use. `make images` runs this.
#
#   bash hack/images/build-images.sh [operator] [trainer]     # default: both
#
# Prints each image's name on stdout (progress, sizes and build times on stderr).
#
# Container runtime: podman (installed from Debian's packages when missing), or docker when it is
# installed and its daemon answers. With podman, hack/images/containers.conf holds the settings these
# machines need. A base image is built locally with mmdebstrap (build-base.sh) unless BASE is set,
# because no image registry is reachable here; on a machine that can pull, BASE=default builds on the
# Dockerfiles' own bases (python slim for the operator, a CUDA runtime for the trainer).
#
# Each image is labelled with a hash of its inputs (Dockerfile, sources, this script); an image whose
# label matches is not rebuilt, so a warm `make images` or `make test` costs seconds. FORCE=1 rebuilds.
# One build at a time per machine (a lock under the cache directory): concurrent callers wait, then
# find the image built.
#
# Environment: BASE (an image, or "default"), TORCH_INDEX_URL (an extra index for torch, e.g. one with
# CPU-only wheels), WHEELS (a host directory of downloaded wheels, mounted into builds so torch is downloaded
# once per machine; default: ~/.cache/elastrain/wheels; pip's own HTTP cache stays empty with this machine's index),
# CONTAINER_RUNTIME (podman or docker), FORCE.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/containers.conf}"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml" | head -1)"

log() { echo "[images] $*" >&2; }

# Debian packages this run needs and lacks (podman when no runtime is usable, mmdebstrap for the local
# base), installed with one `apt-get update`.
install_missing() {
    local missing=()
    if [[ -z "${CONTAINER_RUNTIME:-}" ]] && ! command -v podman >/dev/null \
        && ! { command -v docker >/dev/null && docker info >/dev/null 2>&1; }; then
        missing+=(podman runc uidmap fuse-overlayfs)
    fi
    [[ -z "${BASE:-}" ]] && ! command -v mmdebstrap >/dev/null && missing+=(mmdebstrap)
    if [[ ${#missing[@]} -gt 0 ]]; then
        log "installing ${missing[*]} from Debian's packages"
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
    fi
}

pick_runtime() {
    if [[ -n "${CONTAINER_RUNTIME:-}" ]]; then
        echo "$CONTAINER_RUNTIME"
    elif command -v podman >/dev/null; then
        echo podman
    else
        echo docker
    fi
}

# A hash of everything that goes into an image: the Dockerfile, the files it copies, the build arguments.
inputs_hash() {
    local dockerfile="$1"
    (
        cd "$ROOT"
        find "$dockerfile" pyproject.toml README.md .dockerignore operator trainer_image hack/elastrain_dev \
            hack/images/sbom.sh hack/images/requirements.py hack/images/install-project.sh \
            -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' ! -name '*.pyc' -print0 \
            | LC_ALL=C sort -z | xargs -0 sha256sum
        echo "BASE=$BASE TORCH_INDEX_URL=${TORCH_INDEX_URL:-}"
    ) | sha256sum | cut -c1-16
}

build_one() {
    local name="$1" dockerfile="$2"
    local image="elastrain/$name:$VERSION"
    local hash
    hash="$(inputs_hash "$dockerfile")"
    if [[ -z "${FORCE:-}" ]] \
        && [[ "$("$RUNTIME" image inspect --format '{{index .Config.Labels "dev.elastrain.inputs"}}' "$image" 2>/dev/null)" == "$hash" ]]; then
        log "$image is up to date (inputs $hash)"
        report "$image" "cached"
        echo "$image"
        return
    fi
    local args=(build --network host -f "$ROOT/$dockerfile" -t "$image" --label "dev.elastrain.inputs=$hash")
    [[ "$BASE" != default ]] && args+=(--build-arg "BASE=$BASE")
    [[ -n "${TORCH_INDEX_URL:-}" ]] && args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
    if [[ "$RUNTIME" == podman ]]; then
        # The host's CA bundle (pip finds no versions without it here) and the host's wheel directory.
        args+=(-v "$CA_BUNDLE:$CA_BUNDLE:ro" --build-arg "PIP_CERT=$CA_BUNDLE" -v "$WHEELS:/wheels")
    fi
    log "building $image from $dockerfile (inputs $hash)"
    local start
    start=$(date +%s)
    nice -n 10 "$RUNTIME" "${args[@]}" "$ROOT" >&2
    report "$image" "built in $(($(date +%s) - start)) s"
    echo "$image"
}

report() {
    local size
    size="$("$RUNTIME" image inspect --format '{{.Size}}' "$1")"
    log "$(printf '%-28s %8s MB  %s' "$1" "$((size / 1000000))" "$2")"
}

# The whole run is one function, read before it starts: editing this file while a build runs is safe.
main() {
    CACHE="${ELASTRAIN_CACHE:-$HOME/.cache/elastrain}"
    mkdir -p "$CACHE"
    exec 9>"$CACHE/images.lock"
    flock 9
    install_missing
    RUNTIME="$(pick_runtime)"
    if [[ -z "${BASE:-}" ]]; then
        BASE="$(CONTAINER_RUNTIME="$RUNTIME" bash "$HERE/build-base.sh")"
    fi
    WHEELS="${WHEELS:-$CACHE/wheels}"
    mkdir -p "$WHEELS"

    local targets=("$@")
    [[ ${#targets[@]} -eq 0 ]] && targets=(operator trainer)
    for target in "${targets[@]}"; do
        case "$target" in
            operator) build_one operator Dockerfile ;;
            trainer) build_one trainer trainer_image/Dockerfile ;;
            *) log "unknown image '$target': expected operator or trainer"; exit 2 ;;
        esac
    done
}

main "$@"
