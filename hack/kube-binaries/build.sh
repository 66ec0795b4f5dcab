#!/usr/bin/env bash
# Locate or build the control-plane binaries used by the test suite:
# kube-apiserver, etcd (required) and kubectl (matching version, optional
# when KUBEBUILDER_ASSETS is used).
#
#   hack/kube-binaries/build.sh            -> prints the binaries dir (last line of stdout)
#   hack/kube-binaries/build.sh --versions -> prints "<k8s-version> <etcd-version>"
#
# Order of preference:
#   1. $KUBEBUILDER_ASSETS, if set (must contain kube-apiserver and etcd);
#   2. the cache dir ${PFO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/prefect-flow-operator}/kube/<k8s>-<etcd>/,
#      built from the pinned Go modules in this directory when missing.
#
# Logs go to stderr; stdout carries only the resulting directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf 'kube-binaries: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# Version of a required module, read straight from go.mod (no `go` needed, so
# a warm cache works on machines without a Go toolchain).
mod_version() {
    awk -v m="$1" '
        $1 == "require" { $1 = ""; $0 = substr($0, 2) }
        $1 == m && $2 ~ /^v[0-9]/ { print $2; exit }
    ' "$here/go.mod"
}

k8s_version="$(mod_version k8s.io/kubernetes)"
etcd_version="$(mod_version go.etcd.io/etcd/server/v3)"
[[ -n "$k8s_version" && -n "$etcd_version" ]] ||
    die "cannot read k8s.io/kubernetes / go.etcd.io/etcd/server/v3 versions from $here/go.mod"

if [[ "${1:-}" == "--versions" ]]; then
    echo "$k8s_version $etcd_version"
    exit 0
fi

# 1. Pre-provisioned binaries (e.g. from setup-envtest).
if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
    [[ -d "$KUBEBUILDER_ASSETS" ]] || die "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS is not a directory"
    missing=()
    for bin in kube-apiserver etcd; do
        [[ -x "$KUBEBUILDER_ASSETS/$bin" ]] || missing+=("$bin")
    done
    ((${#missing[@]} == 0)) ||
        die "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks executable(s): ${missing[*]} (unset it to build them from source)"
    log "using KUBEBUILDER_ASSETS"
    (cd "$KUBEBUILDER_ASSETS" && pwd)
    exit 0
fi

# 2. Version-keyed cache, built on demand.
cache_root="${PFO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/prefect-flow-operator}"
kube_cache="$cache_root/kube"
dest="$kube_cache/${k8s_version}-${etcd_version}"
binaries=(kube-apiserver etcd kubectl)

complete() {
    local bin
    for bin in "${binaries[@]}"; do
        [[ -x "$1/$bin" ]] || return 1
    done
}

if complete "$dest"; then
    log "cached: $dest"
    echo "$dest"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    die "no control-plane binaries found and cannot build them: 'go' is not on PATH.
  Either install Go >= $(awk '$1 == "go" { print $2; exit }' "$here/go.mod") (https://go.dev/doc/install; the Go module proxy must be reachable),
  or set KUBEBUILDER_ASSETS to a directory containing kube-apiserver and etcd
  (for example from: setup-envtest use -p path ${k8s_version#v})."
fi

# Consistency check: the staging modules must be pinned at v0.<minor>.<patch>
# of k8s.io/kubernetes, otherwise the build silently mixes versions.
staging_version="v0.${k8s_version#v1.}"
bad_replaces="$(awk -v want="$staging_version" '
    $2 == "=>" && $1 ~ /^k8s\.io\// && $4 != want { print "  " $0 }
' "$here/go.mod")"
[[ -z "$bad_replaces" ]] ||
    die "go.mod replaces staging modules at a version other than $staging_version (k8s.io/kubernetes $k8s_version):
$bad_replaces"

mkdir -p "$kube_cache"

# Serialise concurrent builds (e.g. parallel test workers); the loser of the
# race finds the finished cache after the lock is released.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$kube_cache/.lock"
    if ! flock -n 9; then
        log "another build is running; waiting for the lock on $kube_cache/.lock"
        flock 9
    fi
    if complete "$dest"; then
        log "cached (built concurrently): $dest"
        echo "$dest"
        exit 0
    fi
    # Holding the lock, so any leftover temp dir is from an interrupted build.
    rm -rf "$kube_cache"/.build-*
fi

tmp="$(mktemp -d "$kube_cache/.build-${k8s_version}-${etcd_version}.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

minor="${k8s_version#v1.}"
minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

log "building kube-apiserver + kubectl $k8s_version and etcd $etcd_version into $dest (first build takes several minutes)"
start=$SECONDS
(
    cd "$here"
    # Hermetic-ish: ignore any go.work above, use only the committed go.sum,
    # static binaries like the upstream release builds.
    export GOWORK=off CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
    go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kubectl \
        go.etcd.io/etcd/server/v3
) >&2 || die "go build failed (see output above)"
mv "$tmp/server" "$tmp/etcd" # binary name of go.etcd.io/etcd/server/v3

# Sanity check before publishing the cache entry.
"$tmp/kube-apiserver" --version >&2 || die "built kube-apiserver does not run"
"$tmp/etcd" --version >&2 || die "built etcd does not run"
"$tmp/kubectl" version --client >&2 || die "built kubectl does not run"

elapsed=$((SECONDS - start))
{
    echo "k8s.io/kubernetes $k8s_version"
    echo "go.etcd.io/etcd/server/v3 $etcd_version"
    echo "go $(go env GOVERSION) $(go env GOOS)/$(go env GOARCH)"
    echo "build_seconds $elapsed"
} >"$tmp/VERSIONS"

chmod 755 "$tmp"
# Atomic publish: rename the finished temp dir into place. A stale, incomplete
# $dest (should not happen, but e.g. hand-edited) is moved aside first.
if [[ -e "$dest" ]]; then
    rm -rf "$dest.stale"
    mv -T "$dest" "$dest.stale"
fi
if ! mv -T "$tmp" "$dest" 2>/dev/null; then
    complete "$dest" || die "could not move $tmp to $dest"
fi
rm -rf "$dest.stale"
log "built in ${elapsed}s: $dest"
echo "$dest"
