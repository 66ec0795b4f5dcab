#!/usr/bin/env bash
# Locate or build `promtool` for the chart's monitoring tests (tests/chart/test_monitoring.py:
# `promtool check rules` and `promtool test rules` on the chart's PrometheusRule). Built
# from the Go module proxy at the version pinned in go.mod, checked against the committed
# go.sum; no prebuilt binary is downloaded.
#
#   hack/promtool/build.sh            -> prints the path of the promtool binary (last line of stdout)
#   hack/promtool/build.sh --version  -> prints the pinned github.com/prometheus/prometheus version
#
# Order of preference:
#   1. $PFO_PROMTOOL, if set (path of an existing promtool binary);
#   2. ${PFO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/prefect-flow-operator}/promtool/<version>-<hash>/promtool,
#      built when missing; <hash> covers go.mod and go.sum, so any change builds a new one.
#
# Logs go to stderr; stdout carries only the resulting path.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/go-tool.sh
source "$here/../lib/go-tool.sh"
GO_TOOL_NAME=promtool

# Read from go.mod without `go`, so a warm cache works on machines without a Go toolchain.
version="$(awk '
    $1 == "require" { $1 = ""; $0 = substr($0, 2) }
    $1 == "github.com/prometheus/prometheus" && $2 ~ /^v[0-9]/ { print $2; exit }
' "$here/go.mod")"
[[ -n "$version" ]] || go_tool_die "cannot read the github.com/prometheus/prometheus version from $here/go.mod"

go_tool_preamble "$version" PFO_PROMTOOL "$@"

build() {
    cd "$here"
    # Module v0.3MM.P is Prometheus 3.MM.P: stamp it, as the release build does, so
    # `promtool --version` names the release rather than "(devel)".
    local minor=${version#v0.} patch release
    patch=${minor#*.}
    minor=${minor%%.*}
    release="$((minor / 100)).$((minor % 100)).$patch"
    # -mod=readonly: go.mod and go.sum are committed and never rewritten by a build.
    GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath \
        -ldflags "-s -w -X github.com/prometheus/common/version.Version=$release -X github.com/prometheus/common/version.Branch=module -X github.com/prometheus/common/version.Revision=$version" \
        -o "$1/promtool" github.com/prometheus/prometheus/cmd/promtool
}
check() { "$1/promtool" --version; }

key="$version-$(cd "$here" && cat go.mod go.sum | sha256sum | cut -c1-8)"
go_tool_install "$key" promtool "promtool (github.com/prometheus/prometheus $version; the first build takes several minutes)" build check
