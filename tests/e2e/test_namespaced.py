"""PFO_NAMESPACES: the operator serves only the namespaces it is told to."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.test_operator import apply, condition, flow_deployment, get, pool, prefect_deployment, ready, wait_for
from tests.support.operator_process import OperatorProcess
from tests.support.prefect_server import PrefectServer

REPO_CRDS = __import__("pathlib").Path(__file__).resolve().parents[2] / "crds"


@pytest.fixture(scope="module")
def setup(control_plane: Any) -> Iterator[tuple[Any, httpx.Client]]:
    control_plane.kubectl("apply", "--server-side", "-f", str(REPO_CRDS))
    control_plane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    for ns in ("watched", "ignored"):
        control_plane.kubectl("create", "namespace", ns, check=False)
    with PrefectServer() as prefect, OperatorProcess(
        kubeconfig=str(control_plane.kubeconfig), prefect_api_url=prefect.api_url, PFO_NAMESPACES="watched"
    ), httpx.Client(base_url=prefect.api_url + "/") as papi:
        yield control_plane.kubectl, papi


def test_only_watched_namespaces_are_served(setup: tuple[Any, httpx.Client]) -> None:
    kubectl, papi = setup
    watched = flow_deployment("ns-flow", "ns-pool")
    watched["metadata"]["namespace"] = "watched"
    ignored = flow_deployment("ns-flow", "ns-pool", deploymentName="ignored-one")
    ignored["metadata"]["namespace"] = "ignored"
    apply(kubectl, pool("ns-pool"), watched, ignored)
    # Cluster-scoped pools are served in namespaced mode too.
    wait_for(lambda: ready(kubectl, "pwp", "ns-pool", None), 60, "pool Ready")
    wait_for(lambda: ready(kubectl, "pfd", "ns-flow", "watched"), 60, "watched Ready")
    assert prefect_deployment(papi, "etl", "ns-flow") is not None
    # Give the operator a few resync intervals: the other namespace stays untouched.
    import time

    time.sleep(8)
    assert "status" not in get(kubectl, "pfd", "ns-flow", "ignored")
    assert prefect_deployment(papi, "etl", "ignored-one") is None
    with pytest.raises(StopIteration):
        condition(get(kubectl, "pfd", "ns-flow", "ignored"), "Ready")
