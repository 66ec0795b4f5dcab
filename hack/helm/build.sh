#!/usr/bin/env bash
# Locate or build `helm` for the chart tests (tests/chart/), the same way
# hack/kube-binaries/build.sh builds the control plane: from the Go module proxy,
# cached by version. No prebuilt binary is downloaded.
#
#   hack/helm/build.sh            -> prints the path of the helm binary (last line of stdout)
#   hack/helm/build.sh --version  -> prints the pinned helm version
#
# Order of preference:
#   1. $PFO_HELM, if set (path of an existing helm 3 binary);
#   2. ${PFO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/prefect-flow-operator}/helm/<version>/helm,
#      built with `go install helm.sh/helm/v3/cmd/helm@<version>` when missing
#      (checksums verified against sum.golang.org by the go command).
#
# Logs go to stderr; stdout carries only the resulting path.
set -euo pipefail

HELM_VERSION="${PFO_HELM_VERSION:-v3.21.4}"

log() { printf 'helm-build: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ "${1:-}" == "--version" ]]; then
    echo "$HELM_VERSION"
    exit 0
fi

if [[ -n "${PFO_HELM:-}" ]]; then
    [[ -x "$PFO_HELM" ]] || die "PFO_HELM=$PFO_HELM is not executable"
    log "using PFO_HELM"
    echo "$PFO_HELM"
    exit 0
fi

cache_root="${PFO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/prefect-flow-operator}"
helm_cache="$cache_root/helm"
dest="$helm_cache/$HELM_VERSION"

if [[ -x "$dest/helm" ]]; then
    log "cached: $dest/helm"
    echo "$dest/helm"
    exit 0
fi

command -v go >/dev/null 2>&1 ||
    die "no cached helm at $dest and 'go' is not on PATH: install Go (the module proxy must be reachable) or set PFO_HELM to a helm 3 binary"

mkdir -p "$helm_cache"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$helm_cache/.lock"
    if ! flock -n 9; then
        log "another build is running; waiting for $helm_cache/.lock"
        flock 9
    fi
    if [[ -x "$dest/helm" ]]; then
        echo "$dest/helm"
        exit 0
    fi
    rm -rf "$helm_cache"/.build-*
fi

tmp="$(mktemp -d "$helm_cache/.build-$HELM_VERSION.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building helm $HELM_VERSION into $dest (first build takes a few minutes)"
start=$SECONDS
(
    export GOWORK=off CGO_ENABLED=0 GOFLAGS="-buildvcs=false" GOBIN="$tmp"
    cd "$tmp"
    # Like helm's own release build, stamp the Kubernetes version of its client-go
    # (0.<minor>.x -> 1.<minor>) as the default for `helm template`/`lint`
    # (.Capabilities.KubeVersion); unstamped it would claim v1.20.
    gomod="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
    [[ -f "$gomod" ]] || { echo "cannot find go.mod of helm.sh/helm/v3@$HELM_VERSION" >&2; exit 1; }
    k8s_minor="$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2]; exit }' "$gomod")"
    [[ -n "$k8s_minor" ]] || { echo "cannot read the client-go version from $gomod" >&2; exit 1; }
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
        ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
    done
    go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
) >&2 || die "go install failed (see output above)"

"$tmp/helm" version --short >&2 || die "built helm does not run"
elapsed=$((SECONDS - start))
{
    echo "helm.sh/helm/v3 $HELM_VERSION"
    echo "go $(go env GOVERSION) $(go env GOOS)/$(go env GOARCH)"
    echo "build_seconds $elapsed"
} >"$tmp/VERSIONS"
chmod 755 "$tmp"
if [[ -e "$dest" ]]; then
    rm -rf "$dest.stale"
    mv -T "$dest" "$dest.stale"
fi
mv -T "$tmp" "$dest" || { [[ -x "$dest/helm" ]] || die "could not move $tmp to $dest"; }
rm -rf "$dest.stale"
log "built in ${elapsed}s: $dest/helm"
echo "$dest/helm"
