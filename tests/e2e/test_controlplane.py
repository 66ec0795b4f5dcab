"""The test control plane itself: a real etcd + kube-apiserver with RBAC, client-cert admin and
ServiceAccount tokens (tests/support/controlplane.py)."""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.controlplane import REPO, SERVICE_ACCOUNT_ISSUER, ControlPlane, ControlPlaneError


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def whoami(cp: ControlPlane, kubeconfig: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(cp.kubectl("auth", "whoami", "-o", "json", kubeconfig=kubeconfig).stdout)["status"][
        "userInfo"
    ]
    return info


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def test_api_server_answers_kubectl(control_plane: ControlPlane) -> None:
    version = json.loads(control_plane.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert version["major"] == "1" and int(version["minor"].rstrip("+")) >= 33
    names = set(control_plane.kubectl("get", "namespaces", "-o", "name").stdout.split())
    assert {"namespace/default", "namespace/kube-system", "namespace/kube-public"} <= names
    # RBAC is bootstrapped before start() returns.
    control_plane.kubectl("get", "clusterrole", "cluster-admin")


def test_admin_is_a_client_certificate_in_system_masters(control_plane: ControlPlane) -> None:
    config = json.loads(Path(control_plane.kubeconfig).read_text())
    assert "client-certificate-data" in config["users"][0]["user"]
    assert config["clusters"][0]["cluster"]["server"] == control_plane.server
    assert control_plane.server.startswith("https://127.0.0.1:")
    assert "system:masters" in whoami(control_plane)["groups"]
    assert control_plane.kubectl("auth", "can-i", "*", "*", "--all-namespaces").stdout.strip() == "yes"


def test_a_namespace_can_be_created_and_used(control_plane: ControlPlane) -> None:
    ns = unique("ns")
    control_plane.kubectl("create", "namespace", ns)
    assert json.loads(control_plane.kubectl("get", "namespace", ns, "-o", "json").stdout)["status"]["phase"] == "Active"
    control_plane.kubectl("create", "configmap", "settings", "-n", ns, "--from-literal=answer=42")
    cm = json.loads(control_plane.kubectl("get", "configmap", "settings", "-n", ns, "-o", "json").stdout)
    assert cm["data"] == {"answer": "42"}


def test_rbac_forbids_a_service_account_until_a_role_binding_allows_it(control_plane: ControlPlane) -> None:
    ns = unique("rbac")
    kubeconfig = control_plane.service_account_kubeconfig(ns, "reader")

    denied = control_plane.kubectl("get", "secrets", "-n", ns, kubeconfig=kubeconfig, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower() and f"system:serviceaccount:{ns}:reader" in denied.stderr

    control_plane.kubectl("create", "role", "secret-reader", "-n", ns, "--verb=get,list", "--resource=secrets")
    control_plane.kubectl("create", "rolebinding", "reader", "-n", ns, "--role=secret-reader", f"--serviceaccount={ns}:reader")

    # The RBAC authorizer reads bindings from an informer cache: give it a moment.
    deadline = time.monotonic() + 30
    while (allowed := control_plane.kubectl("get", "secrets", "-n", ns, kubeconfig=kubeconfig, check=False)).returncode != 0:
        assert "forbidden" in allowed.stderr.lower(), allowed.stderr
        assert time.monotonic() < deadline, f"still forbidden 30s after the RoleBinding: {allowed.stderr}"
        time.sleep(0.2)

    # ... and only what the Role grants, only in its namespace.
    other_ns = control_plane.kubectl("get", "secrets", "-n", "default", kubeconfig=kubeconfig, check=False)
    assert other_ns.returncode != 0 and "forbidden" in other_ns.stderr.lower()
    write = control_plane.kubectl(
        "create", "secret", "generic", "s", "-n", ns, "--from-literal=a=b", kubeconfig=kubeconfig, check=False
    )
    assert write.returncode != 0 and "forbidden" in write.stderr.lower()


def test_service_account_token_kubeconfig_authenticates_as_the_service_account(control_plane: ControlPlane) -> None:
    ns = unique("sa")
    kubeconfig = control_plane.service_account_kubeconfig(ns, "runner")
    config = json.loads(Path(kubeconfig).read_text())
    user = config["users"][0]["user"]
    assert set(user) == {"token"}, "must authenticate with the token only"
    assert config["contexts"][0]["context"]["namespace"] == ns

    info = whoami(control_plane, kubeconfig)
    assert info["username"] == f"system:serviceaccount:{ns}:runner"
    assert {"system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"} <= set(info["groups"])

    # A TokenRequest (bound) token from our issuer, valid for the requested 24h.
    claims = jwt_claims(user["token"])
    assert claims["iss"] == SERVICE_ACCOUNT_ISSUER
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert claims["kubernetes.io"]["serviceaccount"]["name"] == "runner"

    # A token the server did not sign is rejected.
    head, body, sig = user["token"].split(".")
    forged = dict(config, users=[{"name": config["users"][0]["name"], "user": {"token": f"{head}.{body}.{sig[::-1]}"}}])
    forged_path = Path(kubeconfig).with_name(f"forged-{ns}.kubeconfig")
    forged_path.write_text(json.dumps(forged))
    rejected = control_plane.kubectl("get", "configmaps", kubeconfig=forged_path, check=False)
    assert rejected.returncode != 0 and "unauthorized" in rejected.stderr.lower()


def test_pods_need_the_default_service_account_which_ensure_namespace_creates(control_plane: ControlPlane) -> None:
    # No controller-manager: nothing creates a namespace's `default` ServiceAccount, and the
    # ServiceAccount admission plugin (left on) rejects pods without one.
    ns = unique("pods")
    control_plane.kubectl("create", "namespace", ns)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": ns},
        "spec": {"containers": [{"name": "c", "image": "example.invalid/none:1"}]},
    }
    rejected = control_plane.kubectl("create", "-f", "-", input=json.dumps(pod), check=False)
    assert rejected.returncode != 0 and 'serviceaccount "default" not found' in rejected.stderr

    control_plane.ensure_namespace(ns)
    control_plane.kubectl("create", "-f", "-", input=json.dumps(pod))
    stored = json.loads(control_plane.kubectl("get", "pod", "p", "-n", ns, "-o", "json").stdout)
    assert stored["spec"]["serviceAccountName"] == "default"
    assert any("projected" in v for v in stored["spec"]["volumes"]), "the admission plugin mounts a token volume"


def test_start_failure_reports_the_logs_and_cleans_up() -> None:
    cp = ControlPlane(extra_apiserver_args=["--no-such-flag=1"], startup_timeout=60)
    with pytest.raises(ControlPlaneError) as failure:
        cp.start()
    message = str(failure.value)
    assert "kube-apiserver exited" in message and "unknown flag: --no-such-flag" in message
    assert cp.dir is None and cp.etcd is None and cp.apiserver is None


def test_a_second_control_plane_runs_alongside_and_stops_without_leftovers(control_plane: ControlPlane) -> None:
    with ControlPlane() as cp:
        assert cp.server != control_plane.server
        directory = cp.dir
        assert directory is not None and (directory / "kube-apiserver.log").exists()
        processes = [p for p in (cp.apiserver, cp.etcd) if p is not None]
        assert len(processes) == 2
        cp.kubectl("create", "namespace", "only-here")
        assert control_plane.kubectl("get", "namespace", "only-here", check=False).returncode != 0
    assert not directory.exists()
    assert all(p.returncode is not None for p in processes)
    for p in processes:
        with pytest.raises(ProcessLookupError):
            os.kill(p.pid, 0)


def test_command_line_prints_kubeconfig_and_stops_on_ctrl_c(control_plane: ControlPlane, tmp_path: Path) -> None:
    with (tmp_path / "stderr").open("w") as stderr:
        command = [sys.executable, "-m", "tests.support.controlplane"]
        proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline() if ready else ""
        assert line.startswith("export KUBECONFIG="), (
            f"got {line!r}; exit={proc.poll()}; stderr:\n{(tmp_path / 'stderr').read_text()}"
        )
        kubeconfig = line.strip().split("=", 1)[1]
        config = json.loads(Path(kubeconfig).read_text())
        directory = Path(kubeconfig).parent
        server = config["clusters"][0]["cluster"]["server"]
        assert server.startswith("https://127.0.0.1:") and server != control_plane.server
        # (the session's kubectl, pointed at the other server)
        control_plane.kubectl("get", "namespace", "default", kubeconfig=kubeconfig)
        proc.send_signal(signal.SIGINT)
        # Each of kube-apiserver and etcd gets stop_timeout (20 s) to exit before it is killed.
        assert proc.wait(2 * 20 + 30) == 0
        assert not directory.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_crds_apply_client_side_too(control_plane) -> None:  # type: ignore[no-untyped-def]
    """Users without server-side apply (older Argo CD, plain `kubectl apply`) must not hit
    the 256 KiB last-applied-configuration limit or a schema the server refuses."""
    from pathlib import Path

    crds = Path(__file__).resolve().parents[2] / "crds"
    out = control_plane.kubectl("apply", "--dry-run=server", "-f", str(crds))
    assert out.stdout.count("(server dry run)") == len(list(crds.glob("*.yaml"))) >= 3, out.stdout
