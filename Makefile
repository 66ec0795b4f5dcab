# The two commands the README promises, plus a few for development.
.PHONY: test run dev crds check-crds bootstrap bench

test:  ## The whole test suite from a fresh clone (sets up venvs, Prefect, kube-apiserver + etcd).
	hack/test.sh

run: bootstrap  ## Run the operator against the current kubeconfig (PREFECT_API_URL must be set).
	.venv/bin/prefect-flow-operator

dev:  ## Local control plane + Prefect server + operator + examples; Ctrl-C cleans up.
	hack/dev.sh

bench:  ## Scale benchmark (docs/benchmarks.md): 100 and 1,000 CRs vs prefect deploy; ~10 min, not part of test.
	eval "$$(hack/bootstrap.sh)" && PFO_PREFECT_VENV=$$PWD/.venv-prefect .venv/bin/python -m bench.run $(BENCH_ARGS)

crds: bootstrap  ## Regenerate crds/ from the API models.
	.venv/bin/python -m prefect_flow_operator.crdgen

check-crds: bootstrap
	.venv/bin/python -m prefect_flow_operator.crdgen --check

bootstrap:
	@PFO_SKIP_KUBE=1 hack/bootstrap.sh >/dev/null
