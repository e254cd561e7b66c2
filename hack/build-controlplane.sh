#!/usr/bin/env bash
# Builds the local control plane from Go modules (through the Go module proxy) into a
# per-version cache outside the repo, and prints the cache's bin directory.
#
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  <- hack/tools/kubernetes
#   etcd                                                            <- hack/tools/etcd
#   kwok                                                            <- hack/tools/kwok
#   helm                                                            <- hack/tools/helm
#
# The cache key is a hash of the tool modules (go.mod, go.sum, sources) and the Go version,
# so a binary is rebuilt only when its pinned version changes. The first build takes many
# minutes on 2 cores; later calls return at once.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="$here/tools"
cache_root="${ELASTRAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/elastrain}"

# Version of k8s.io/kubernetes, read from its pin so the ldflags cannot drift from go.mod.
k8s_version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$tools/kubernetes/go.mod")"
[[ -n "$k8s_version" ]] || { echo "build-controlplane: no k8s.io/kubernetes require line in $tools/kubernetes/go.mod" >&2; exit 1; }

key="$( (go version; cd "$tools" && find . -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16)"
bin="$cache_root/controlplane-$k8s_version-$key/bin"
mkdir -p "$bin"

# One build per machine at a time: a second caller (another clone, a test, make) waits for the
# first instead of racing it on the same temporary files, then finds the binaries built.
exec 9>"$bin/.build.lock"
flock 9

log() { printf '[build-controlplane] %s\n' "$*" >&2; }

# build DIR OUTPUT PACKAGE [LDFLAGS]: go build PACKAGE inside tool module DIR, atomically.
build() {
  local dir="$1" out="$2" pkg="$3" ldflags="${4:-}"
  if [[ -x "$bin/$out" ]]; then return 0; fi
  log "building $out from $pkg (cold builds take minutes; cached in $bin)"
  local start=$SECONDS
  CGO_ENABLED=0 go -C "$tools/$dir" build -trimpath -ldflags "-s -w $ldflags" -o "$bin/.$out.tmp" "$pkg"
  mv "$bin/.$out.tmp" "$bin/$out"
  log "built $out in $((SECONDS - start)) s"
}

# The same version variables upstream's hack/lib/version.sh sets, so `--version`, `kubectl
# version` and the API server's /version report the real release, not v0.0.0-master.
minor="${k8s_version#v1.}"; minor="${minor%%.*}"
commit="$(printf '%s' "$k8s_version" | sha1sum | cut -c1-40)"
k8s_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=$commit -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  build kubernetes "$cmd" "k8s.io/kubernetes/cmd/$cmd" "$k8s_ldflags"
done
build etcd etcd ./cmd/etcd
build kwok kwok sigs.k8s.io/kwok/cmd/kwok
build helm helm helm.sh/helm/v3/cmd/helm

# KWOK's own stage definitions, from the pinned module: node-initialize, lease heartbeats, and
# the fast pod stages (Running at once, deletion finalised). Nodes are "failed" by taking them
# out of KWOK's management, so the heartbeat stops and the node lifecycle controller takes over.
stages="$bin/kwok-stages.yaml"
if [[ ! -s "$stages" ]]; then
  kwok_dir="$(go -C "$tools/kwok" list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  for f in stage/node/fast/node-initialize.yaml stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           stage/pod/fast/pod-ready.yaml stage/pod/fast/pod-complete.yaml stage/pod/fast/pod-delete.yaml; do
    printf -- '---\n'; cat "$kwok_dir/kustomize/$f"
  done > "$stages.tmp"
  mv "$stages.tmp" "$stages"
fi

echo "$bin"
