#!/usr/bin/env bash
# Sets up everything the test suite needs from a fresh clone, idempotently:
#   .venv          the operator with its test extras
#   .venv-prefect  a real Prefect server + Kubernetes worker (hack/prefect-server-requirements.txt)
#   kube binaries  kube-apiserver + etcd, built from Go modules and cached (hack/kube-binaries)
# Each step is skipped when its inputs have not changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

stamp_ok() { [ -f "$1/.stamp" ] && [ "$(cat "$1/.stamp")" = "$2" ]; }

venv() {  # venv DIR HASH PIP-ARGS...
  local dir=$1 hash=$2; shift 2
  if stamp_ok "$dir" "$hash"; then return; fi
  echo "bootstrap: creating $dir" >&2
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
  echo "$hash" > "$dir/.stamp"
}

venv .venv "$(cat pyproject.toml | sha256sum | cut -c1-16)" -e '.[test]'
venv .venv-prefect "$(sha256sum hack/prefect-server-requirements.txt | cut -c1-16)" -r hack/prefect-server-requirements.txt

# The integration matrix (tests/integration/conftest.py): the oldest supported Prefect line,
# 3.6.x, in .venv-prefect-3.6, and PostgreSQL 15 for the throwaway cluster of the Postgres
# runs (tests/support/postgres.py), installed from Debian's packages only when missing.
venv .venv-prefect-3.6 "$(sha256sum hack/prefect-server-3.6-requirements.txt | cut -c1-16)" -r hack/prefect-server-3.6-requirements.txt
echo "export PFO_PREFECT_VENV_36=$PWD/.venv-prefect-3.6"
if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  echo "bootstrap: installing postgresql-15" >&2
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql-15; } >&2
fi

if [ -x hack/kube-binaries/build.sh ] && [ "${PFO_SKIP_KUBE:-}" != 1 ]; then
  KUBE_ASSETS=$(hack/kube-binaries/build.sh | tail -n 1)
  echo "export KUBEBUILDER_ASSETS=$KUBE_ASSETS"
fi

# helm for the chart tests (tests/chart, tests/e2e/test_chart_rbac.py), built from the Go
# module proxy and cached by version like the kube binaries (hack/helm/build.sh).
if [ -x hack/helm/build.sh ] && [ "${PFO_SKIP_KUBE:-}" != 1 ] && [ "${PFO_SKIP_HELM:-}" != 1 ]; then
  HELM_BIN=$(hack/helm/build.sh | tail -n 1)
  echo "export PFO_HELM=$HELM_BIN"
fi
if [ -x hack/lua-health/build.sh ] && [ "${PFO_SKIP_KUBE:-}" != 1 ]; then LUA_HEALTH=$(hack/lua-health/build.sh | tail -n 1); echo "export PFO_LUA_HEALTH=$LUA_HEALTH"; fi  # gopher-lua harness for tests/unit/test_argocd_health_gopher.py
# promtool for the chart's alert rules (tests/chart/test_monitoring.py), built from the Go module proxy (hack/promtool/build.sh).
if [ -x hack/promtool/build.sh ] && [ "${PFO_SKIP_KUBE:-}" != 1 ]; then PROMTOOL_BIN=$(hack/promtool/build.sh | tail -n 1); echo "export PFO_PROMTOOL=$PROMTOOL_BIN"; fi
