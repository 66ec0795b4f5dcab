"""End-to-end tests run against a real etcd + kube-apiserver that the suite starts (see
tests/support/controlplane.py); the binaries come from hack/kube-binaries/build.sh."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.controlplane import ControlPlane, ControlPlaneError, binaries_dir
from tests.support.prefect_http import prefect_client
from tests.support.prefect_server import PrefectServer


def pytest_collection_finish(session: pytest.Session) -> None:
    # The first build of the binaries takes minutes. Do it once, before any test runs, so it
    # does not count against a test's timeout (pytest-timeout includes fixture setup).
    if session.config.option.collectonly:
        return
    if any("/e2e/" in str(item.path) for item in session.items):
        # Show the build's progress on the terminal instead of capturing it.
        capture = session.config.pluginmanager.getplugin("capturemanager")
        try:
            if capture is not None:
                with capture.global_and_fixture_disabled():
                    binaries_dir()
            else:
                binaries_dir()
        except ControlPlaneError:
            pass  # the control_plane fixture tries again and reports the error on the tests


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver on loopback for the whole session; `.kubeconfig` is the admin's."""
    with ControlPlane() as cp:
        yield cp


@pytest.fixture(scope="module")
def prefect() -> Iterator[PrefectServer]:
    """A Prefect server for the module (a module that needs other settings defines its own)."""
    with PrefectServer() as server:
        yield server


@pytest.fixture(scope="module")
def kubectl(control_plane: ControlPlane) -> Callable[..., Any]:
    """kubectl against the test API server: as admin, or with `kubeconfig` (a ServiceAccount's)."""

    def run(*args: str, input: str | None = None, check: bool = True, kubeconfig: str | None = None) -> Any:
        return control_plane.kubectl(*args, input=input, check=check, kubeconfig=kubeconfig)

    return run


@pytest.fixture
def papi(prefect: PrefectServer) -> Iterator[httpx.Client]:
    """The module's Prefect server (each module has its `prefect` fixture), as a test reads it."""
    with prefect_client(prefect.api_url) as client:
        yield client
