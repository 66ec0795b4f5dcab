"""The operator process loads only what it runs: the `kubernetes` client library and
`rich` are installed (for `pfo` and the tests) but were ~11 MB of its idle RSS."""

from __future__ import annotations

import subprocess
import sys

PROBE = (
    "import sys, prefect_flow_operator.__main__, prefect_flow_operator.handlers, kopf;"
    "print(' '.join(sorted(m for m in ('kubernetes', 'rich') if sys.modules.get(m) is not None)) or '-');"
    "print(len(kopf.get_default_registry()._changing.get_all_handlers()))"
)


def test_the_operator_process_does_not_import_the_kubernetes_client_or_rich() -> None:
    # A new interpreter: this test process has both imported already (the bench helpers, pytest).
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "-", f"the operator imported {out[0]}"
    assert int(out[1]) > 0  # and kopf still registered the handlers


def test_pfo_still_has_the_kubernetes_client_for_exec_plugin_logins() -> None:
    probe = "import kubernetes.config, prefect_flow_operator.cli; print(kubernetes.config.__name__)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "kubernetes.config"
