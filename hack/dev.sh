#!/usr/bin/env bash
# `make dev`: control plane + Prefect server + operator + examples, until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(hack/bootstrap.sh)"
export PFO_PREFECT_VENV="$PWD/.venv-prefect"
exec .venv/bin/python hack/dev.py
