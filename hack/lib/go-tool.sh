# shellcheck shell=bash
# The one shape shared by the build scripts of the Go-built test tools (hack/helm,
# hack/lua-health, hack/promtool): find the binary in a keyed cache, or build it from the
# Go module proxy into a temp dir under a lock and publish it with one rename.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib/go-tool.sh"
#   GO_TOOL_NAME=helm                   # cache dir name and log prefix
#   build() { go install ... ; }        # builds into "$1" (its stdout is sent to stderr)
#   check() { "$1/helm" version; }      # optional: the built binary must run
#   go_tool_install <key> <binary> <what, for the log> build [check]
#
# go_tool_install prints the binary's path on stdout and exits; everything else goes to
# stderr. The cache is ${PFO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/prefect-flow-operator}/<name>/<key>/,
# with a VERSIONS file (`go version -m` of the binary and build_seconds). A cached binary
# needs no Go toolchain. Concurrent builds (parallel test workers) wait on one flock; an
# interrupted build leaves only a .build-* temp dir, removed by the next build.

go_tool_log() { printf '%s-build: %s\n' "${GO_TOOL_NAME:?}" "$*" >&2; }
go_tool_die() {
    go_tool_log "ERROR: $*"
    exit 1
}

go_tool_cache_root() { echo "${PFO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/prefect-flow-operator}"; }

# The common start of a build script: `--version` prints VERSION and exits; a set
# override variable (PFO_HELM, PFO_PROMTOOL, ...) names the binary to use instead.
#   go_tool_preamble <version> <override variable name> "$@"
go_tool_preamble() {
    local version=$1 var=$2
    shift 2
    if [[ "${1:-}" == "--version" ]]; then
        echo "$version"
        exit 0
    fi
    if [[ -n "${!var:-}" ]]; then
        [[ -x "${!var}" ]] || go_tool_die "$var=${!var} is not executable"
        go_tool_use "${!var}" "using $var"
    fi
}

# Exit 0 printing $1 when it is an executable file; return otherwise.
go_tool_use() {
    if [[ -x "$1" && -f "$1" ]]; then
        go_tool_log "${2:-cached}: $1"
        echo "$1"
        exit 0
    fi
}

go_tool_install() {
    local key=$1 bin=$2 what=$3 build_fn=$4 check_fn=${5:-}
    local cache dest start elapsed
    cache="$(go_tool_cache_root)/${GO_TOOL_NAME:?}"
    dest="$cache/$key"
    go_tool_use "$dest/$bin"

    command -v go >/dev/null 2>&1 ||
        go_tool_die "no cached $GO_TOOL_NAME at $dest and 'go' is not on PATH: install Go (the Go module proxy must be reachable)${GO_TOOL_NO_GO_HINT:+, or $GO_TOOL_NO_GO_HINT}"

    mkdir -p "$cache"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$cache/.lock"
        if ! flock -n 9; then
            go_tool_log "another build is running; waiting for $cache/.lock"
            flock 9
        fi
        go_tool_use "$dest/$bin" "cached (built concurrently)"
        # Holding the lock, so any leftover temp dir is from an interrupted build.
        rm -rf "$cache"/.build-*
    fi

    # Global, not local: the EXIT trap runs after this function's scope is gone.
    GO_TOOL_TMP="$(mktemp -d "$cache/.build-$key.XXXXXX")"
    trap 'rm -rf "$GO_TOOL_TMP"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    go_tool_log "building $what into $dest"
    start=$SECONDS
    (
        # Hermetic-ish: ignore any go.work above; static binaries like upstream releases.
        export GOWORK=off CGO_ENABLED=0
        "$build_fn" "$GO_TOOL_TMP"
    ) >&2 || go_tool_die "build failed (see output above)"
    [[ -x "$GO_TOOL_TMP/$bin" ]] || go_tool_die "the build produced no $bin"
    if [[ -n "$check_fn" ]]; then
        "$check_fn" "$GO_TOOL_TMP" >&2 || go_tool_die "built $bin does not run"
    fi
    elapsed=$((SECONDS - start))
    {
        go version -m "$GO_TOOL_TMP/$bin" | sed '1s/^.*: /go /'
        echo "build_seconds $elapsed"
    } >"$GO_TOOL_TMP/VERSIONS"

    chmod 755 "$GO_TOOL_TMP"
    # Atomic publish: one rename. An incomplete $dest (e.g. hand-edited) is moved aside first.
    if [[ -e "$dest" ]]; then
        rm -rf "$dest.stale"
        mv -T "$dest" "$dest.stale"
    fi
    if ! mv -T "$GO_TOOL_TMP" "$dest" 2>/dev/null; then
        [[ -x "$dest/$bin" ]] || go_tool_die "could not move $GO_TOOL_TMP to $dest"
    fi
    rm -rf "$dest.stale"
    go_tool_log "built in ${elapsed}s: $dest/$bin"
    echo "$dest/$bin"
    exit 0
}
