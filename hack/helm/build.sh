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
# Logs go to stderr; stdout carries only the resulting path. Cache, lock and publish:
# hack/lib/go-tool.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/go-tool.sh
source "$here/../lib/go-tool.sh"
GO_TOOL_NAME=helm
GO_TOOL_NO_GO_HINT="set PFO_HELM to a helm 3 binary"

HELM_VERSION="${PFO_HELM_VERSION:-v3.21.4}"

go_tool_preamble "$HELM_VERSION" PFO_HELM "$@"

build() {
    export GOFLAGS="-buildvcs=false" GOBIN="$1"
    cd "$1"
    # Like helm's own release build, stamp the Kubernetes version of its client-go
    # (0.<minor>.x -> 1.<minor>) as the default for `helm template`/`lint`
    # (.Capabilities.KubeVersion); unstamped it would claim v1.20.
    local gomod k8s_minor ldflags pkg
    gomod="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
    [[ -f "$gomod" ]] || { echo "cannot find go.mod of helm.sh/helm/v3@$HELM_VERSION" >&2; return 1; }
    k8s_minor="$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2]; exit }' "$gomod")"
    [[ -n "$k8s_minor" ]] || { echo "cannot read the client-go version from $gomod" >&2; return 1; }
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
        ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
    done
    go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}
check() { "$1/helm" version --short; }

go_tool_install "$HELM_VERSION" helm "helm $HELM_VERSION (the first build takes a few minutes)" build check
