#!/usr/bin/env bash
# The whole test suite from a fresh clone: `make test` (and CI's .ci/run) call this.
# Extra arguments go to pytest, e.g. `hack/test.sh tests/unit -k schedules`.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(hack/bootstrap.sh)"
export PFO_PREFECT_VENV="$PWD/.venv-prefect"
.venv/bin/python -m prefect_flow_operator.crdgen --check
# Guard rails before the tests: lint (pyproject [tool.ruff]) and strict typing of the package ([tool.mypy]).
.venv/bin/ruff check operator tests bench
.venv/bin/mypy
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
