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
# Cache, lock and publish: hack/lib/go-tool.sh.
set -euo pipefail

src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/go-tool.sh
source "$src/../lib/go-tool.sh"
GO_TOOL_NAME=lua-health

hash="$(cd "$src" && export LC_ALL=C && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)"

build() {
    cd "$src"
    # -mod=readonly: go.mod and go.sum are committed and never rewritten by a build.
    GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -ldflags "-s -w" -o "$1/lua-health" .
}

go_tool_install "$hash" lua-health "the gopher-lua health harness (seconds; up to half a minute with an empty Go build cache)" build
