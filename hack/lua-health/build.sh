#!/usr/bin/env bash
# Build (or find cached) the gopher-lua harness that evaluates Argo CD health scripts the
# way Argo CD does (main.go; used by tests/unit/test_argocd_health_gopher.py). Its
# dependencies come from the Go module proxy, checked against the committed go.sum.
#
#   hack/lua-health/build.sh   -> prints the path of the lua-health binary (last line of stdout)
#
# The binary is cached in
#   ${PFO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/prefect-flow-operator}/lua-health/<hash>/lua-health
# where <hash> covers go.mod, go.sum and the Go sources, so an edit builds a new one and a
# cached binary needs no Go at all. Logs go to stderr; stdout carries only the path.
set -euo pipefail

src="$(cd "$(dirname "$0")" && pwd)"

log() { printf 'lua-health-build: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

hash="$(cd "$src" && export LC_ALL=C && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)"
cache_root="${PFO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/prefect-flow-operator}"
cache="$cache_root/lua-health"
dest="$cache/$hash"

if [[ -x "$dest/lua-health" ]]; then
    log "cached: $dest/lua-health"
    echo "$dest/lua-health"
    exit 0
fi

command -v go >/dev/null 2>&1 ||
    die "no cached harness at $dest and 'go' is not on PATH: install Go (the module proxy must be reachable)"

mkdir -p "$cache"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$cache/.lock"
    if ! flock -n 9; then
        log "another build is running; waiting for $cache/.lock"
        flock 9
    fi
    if [[ -x "$dest/lua-health" ]]; then
        echo "$dest/lua-health"
        exit 0
    fi
    rm -rf "$cache"/.build-*
fi

tmp="$(mktemp -d "$cache/.build-$hash.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building the gopher-lua health harness into $dest (seconds; up to half a minute with an empty Go build cache)"
start=$SECONDS
(
    # -mod=readonly: go.mod and go.sum are committed and never rewritten by a build.
    export GOWORK=off CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
    cd "$src"
    go build -trimpath -ldflags "-s -w" -o "$tmp/lua-health" .
) >&2 || die "go build failed (see output above)"

elapsed=$((SECONDS - start))
{
    go version -m "$tmp/lua-health" | sed "1s/^.*: /go /"
    echo "build_seconds $elapsed"
} >"$tmp/VERSIONS"
chmod 755 "$tmp"
mv -T "$tmp" "$dest" 2>/dev/null || { [[ -x "$dest/lua-health" ]] || die "could not move $tmp to $dest"; }
log "built in ${elapsed}s: $dest/lua-health"
echo "$dest/lua-health"
