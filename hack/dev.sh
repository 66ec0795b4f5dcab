#!/usr/bin/env bash
# `make dev`: control plane + Prefect server + operator + examples, until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
# dev does not use helm (only the chart tests do): don't build it.
export PFO_SKIP_HELM=1
eval "$(hack/bootstrap.sh)"
# The kube binaries dir also holds a kubectl built with kube-apiserver: put it first on PATH,
# so that no older kubectl from the user's PATH talks to this API server.
if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kubectl" ]; then
  export PATH="$KUBEBUILDER_ASSETS:$PATH"
fi
export PFO_PREFECT_VENV="$PWD/.venv-prefect"
exec .venv/bin/python hack/dev.py
