"""A real Kubernetes control plane for tests: etcd + kube-apiserver, like controller-runtime's envtest.

No kubelet, scheduler or controller-manager: objects are stored and validated, RBAC and
admission run, but nothing reconciles. In particular no controller creates the `default`
ServiceAccount of a namespace, garbage-collects, or finishes namespace deletion; use
`ensure_namespace()` / `create_service_account()` for what a test needs.

    with ControlPlane() as cp:
        cp.kubectl("get", "ns")
        sa_kubeconfig = cp.service_account_kubeconfig("team-a", "runner")

The binaries come from `hack/kube-binaries/build.sh` ($KUBEBUILDER_ASSETS, or built once
into a version-keyed cache). Everything else (PKI, etcd data, logs, kubeconfigs) lives in a
temporary directory that `stop()` removes. Set PFO_KEEP_CONTROLPLANE=1 to keep it.

From the command line (for `make dev`):

    python -m tests.support.controlplane [--write-kubeconfig PATH]

prints `export KUBECONFIG=...` and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "kube-binaries" / "build.sh"

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "pfo-admin"
DIR_PREFIX = "pfo-controlplane-"
OWNER_FILE = "owner.pid"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or used."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl call failed; unlike CalledProcessError, str() shows its stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{str(self.stderr or '').strip()}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binaries_dir() -> Path:
    """Run hack/kube-binaries/build.sh (instant once cached) and return the directory it prints."""
    if not BUILD_SCRIPT.exists():
        raise ControlPlaneError(f"missing {BUILD_SCRIPT}")
    # The build log goes to our stderr so a first (minutes long) build shows progress.
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed (exit {proc.returncode}); see its messages on stderr above")
    path = Path(lines[-1])
    for name in ("kube-apiserver", "etcd"):
        if not os.access(path / name, os.X_OK):
            raise ControlPlaneError(f"{BUILD_SCRIPT} printed {path}, which has no executable {name}")
    return path


def _remove_abandoned_dirs() -> None:
    """Remove temp dirs of control planes whose owning process died without stop() (e.g. SIGKILL;
    its etcd and kube-apiserver were already ended by PR_SET_PDEATHSIG)."""
    for directory in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        try:
            pid = int((directory / OWNER_FILE).read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(directory, ignore_errors=True)
        except (OSError, ValueError):
            continue  # no/unreadable owner file (kept dir), or a process of another user


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"({path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


if sys.platform.startswith("linux"):
    import ctypes

    _libc = ctypes.CDLL("libc.so.6", use_errno=True)

    def _die_with_parent() -> None:
        """preexec_fn: have the kernel kill the child when the thread that started it dies, so even a
        SIGKILLed test run leaves no etcd/kube-apiserver behind. SIGKILL, not SIGTERM: both would get
        it at once, and a kube-apiserver whose etcd is gone takes a minute to shut down gracefully."""
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

else:  # pragma: no cover
    _die_with_parent = None  # type: ignore[assignment]


# --------------------------------------------------------------------------- PKI


class _PKI:
    """A throw-away CA, a serving cert for 127.0.0.1, an admin client cert and a service-account key."""

    def __init__(self, directory: Path) -> None:
        try:
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import ec, rsa
            from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ControlPlaneError("the test control plane needs the 'cryptography' package: pip install cryptography") from exc

        self.dir = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        not_before, not_after = now - dt.timedelta(hours=1), now + dt.timedelta(days=30)

        def write_key(name: str, key: Any) -> Path:
            path = directory / name
            path.write_bytes(
                key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            )
            path.chmod(0o600)
            return path

        def write_cert(name: str, cert: Any) -> Path:
            path = directory / name
            path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            return path

        def builder(subject: Any, issuer: Any, public_key: Any) -> Any:
            return (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(issuer)
                .public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(not_before)
                .not_valid_after(not_after)
            )

        def key_usage(*, cert_sign: bool) -> Any:
            return x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=not cert_sign, data_encipherment=False,
                key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False, decipher_only=False,
            )  # fmt: skip

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pfo-test-ca")])
        ca_cert = (
            builder(ca_name, ca_name, ca_key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_file = write_cert("ca.crt", ca_cert)
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value

        def leaf(name: Any, usage: Any, sans: list[Any] | None = None) -> tuple[Any, Any]:
            key = ec.generate_private_key(ec.SECP256R1())
            b = (
                builder(name, ca_name, key.public_key())
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(key_usage(cert_sign=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            )
            if sans:
                b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            return key, b.sign(ca_key, hashes.SHA256())

        service_ip = ipaddress.IPv4Address(next(ipaddress.ip_network(SERVICE_CLUSTER_IP_RANGE).hosts()))
        dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
        serving_key, serving_cert = leaf(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
            ExtendedKeyUsageOID.SERVER_AUTH,
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(service_ip)] + [x509.DNSName(d) for d in dns],
        )
        self.serving_cert_file = write_cert("apiserver.crt", serving_cert)
        self.serving_key_file = write_key("apiserver.key", serving_key)

        admin_key, admin_cert = leaf(
            x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                x509.NameAttribute(NameOID.COMMON_NAME, ADMIN_USER),
            ]),
            ExtendedKeyUsageOID.CLIENT_AUTH,
        )  # fmt: skip
        self.admin_cert_file = write_cert("admin.crt", admin_cert)
        self.admin_key_file = write_key("admin.key", admin_key)

        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_key_file = write_key("sa.key", sa_key)
        self.sa_pub_file = directory / "sa.pub"
        self.sa_pub_file.write_bytes(
            sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )


# --------------------------------------------------------------------------- control plane


class ControlPlane:
    """etcd + kube-apiserver on loopback with RBAC, client-cert admin and ServiceAccount tokens."""

    def __init__(
        self,
        *,
        startup_timeout: float | None = None,
        stop_timeout: float = 20.0,
        bin_dir: str | os.PathLike[str] | None = None,
        keep_dir: bool | None = None,
        extra_apiserver_args: Sequence[str] = (),
    ) -> None:
        self.startup_timeout = (
            startup_timeout if startup_timeout is not None else float(os.environ.get("PFO_CONTROLPLANE_TIMEOUT", "90"))
        )
        self.stop_timeout = stop_timeout
        self.keep_dir = keep_dir if keep_dir is not None else os.environ.get("PFO_KEEP_CONTROLPLANE", "") not in ("", "0")
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.bin_dir: Path | None = Path(bin_dir) if bin_dir else None
        self.dir: Path | None = None
        self.server = ""
        self.kubeconfig = ""
        self.ca_file = ""
        self.etcd_url = ""
        self.etcd: subprocess.Popen[bytes] | None = None
        self.apiserver: subprocess.Popen[bytes] | None = None
        self._kubectl_bin: str | None = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self.apiserver is not None and self.apiserver.poll() is None

    def start(self) -> Self:
        if self.dir is not None:
            raise ControlPlaneError("control plane already started")
        if self.bin_dir is None:
            self.bin_dir = binaries_dir()
        _remove_abandoned_dirs()
        self.dir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
        (self.dir / OWNER_FILE).write_text(f"{os.getpid()}\n")
        atexit.register(self.stop)
        try:
            self._pki = _PKI(self.dir / "pki")
            self.ca_file = str(self._pki.ca_file)
            deadline = time.monotonic() + self.startup_timeout
            # A port picked by free_port() can be taken by someone else before the process binds it:
            # on "address already in use", try again with new ports.
            for attempt in range(3):
                try:
                    self._start_etcd(deadline)
                    self._start_apiserver(deadline)
                    break
                except _PortInUse:
                    if attempt == 2:
                        raise
                    self._stop_processes()
            self._write_admin_kubeconfig()
            self._wait_ready(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        with self._lock:
            self._stop_processes()
            if self.dir is not None and not self.keep_dir:
                shutil.rmtree(self.dir, ignore_errors=True)
            elif self.dir is not None:
                (self.dir / OWNER_FILE).unlink(missing_ok=True)  # kept on purpose: not abandoned
                print(f"controlplane: kept {self.dir}", file=sys.stderr)
            self.dir = None
        atexit.unregister(self.stop)

    def _stop_processes(self) -> None:
        # API server first (it holds etcd connections), then etcd.
        for attr in ("apiserver", "etcd"):
            proc: subprocess.Popen[bytes] | None = getattr(self, attr)
            if proc is None:
                continue
            self._terminate(proc)
            setattr(self, attr, None)

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # ---------------------------------------------------------------- processes

    def _log(self, name: str) -> Path:
        assert self.dir is not None
        return self.dir / f"{name}.log"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        assert self.dir is not None and self.bin_dir is not None
        with self._log(name).open("ab") as log:
            log.write(f"\n==== {time.strftime('%H:%M:%S')} {' '.join(args)}\n".encode())
            log.flush()
            return subprocess.Popen(
                [str(self.bin_dir / name), *args],
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: Ctrl-C in a terminal reaches only us, and we stop in order.
                start_new_session=True,
                # PDEATHSIG fires when the *thread* that forked exits: only tie to the main thread.
                # (The child runs one ctypes call before exec; the usual preexec_fn-with-threads risk is small.)
                preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
            )

    def _failure(self, what: str) -> ControlPlaneError:
        parts = [what]
        for name in ("kube-apiserver", "etcd"):
            parts.append(f"---- last lines of {self._log(name)} ----\n{_tail(self._log(name))}")
        return ControlPlaneError("\n".join(parts))

    def _check_alive(self, name: str, proc: subprocess.Popen[bytes] | None) -> None:
        if proc is not None and proc.poll() is not None:
            # Only this attempt's part of the log (each spawn starts with a "==== " line).
            this_attempt = _tail(self._log(name), 200).rsplit("\n==== ", 1)[-1]
            if "address already in use" in this_attempt:
                raise _PortInUse(str(self._failure(f"{name}: port already in use")))
            raise self._failure(f"{name} exited with code {proc.returncode} during startup")

    def _start_etcd(self, deadline: float) -> None:
        assert self.dir is not None
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        data = self.dir / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)
        self.etcd = self._spawn("etcd", [
            "--name=default",
            f"--data-dir={data}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--initial-cluster-state=new",
            # Test data: durability is not worth the fsync latency on a busy disk.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ])  # fmt: skip
        while True:
            self._check_alive("etcd", self.etcd)
            try:
                with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=5) as resp:
                    if json.loads(resp.read()).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise self._failure(f"etcd not healthy after {self.startup_timeout:.0f}s")
            time.sleep(0.2)

    def restart_apiserver(self, down_seconds: float) -> None:
        """Stop kube-apiserver, wait, and start it again on the same address (an outage)."""
        assert self.apiserver is not None and self.dir is not None
        self._terminate(self.apiserver)
        time.sleep(down_seconds)
        deadline = time.monotonic() + self.startup_timeout
        self._start_apiserver(deadline, port=int(self.server.rsplit(":", 1)[1]))
        self._wait_ready(deadline)

    def _start_apiserver(self, deadline: float, port: int | None = None) -> None:
        assert self.dir is not None
        port = port or free_port()
        self.server = f"https://127.0.0.1:{port}"
        pki = self._pki
        self.apiserver = self._spawn("kube-apiserver", [
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.dir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.serving_cert_file}",
            f"--tls-private-key-file={pki.serving_key_file}",
            f"--client-ca-file={pki.ca_file}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.sa_pub_file}",
            f"--service-account-signing-key-file={pki.sa_key_file}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--allow-privileged=true",
            # The endpoint reconciler would publish 127.0.0.1 as the `kubernetes` service's endpoint,
            # which Endpoints validation rejects (loopback) and logs every few seconds.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            *self.extra_apiserver_args,
        ])  # fmt: skip
        # Fail fast if it dies at once (bad flag, port taken); readiness is awaited later.
        end = min(deadline, time.monotonic() + 1.5)
        while time.monotonic() < end:
            self._check_alive("kube-apiserver", self.apiserver)
            time.sleep(0.1)

    # ---------------------------------------------------------------- readiness

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        ctx.load_cert_chain(str(self._pki.admin_cert_file), str(self._pki.admin_key_file))
        return ctx

    def _get(self, path: str, ctx: ssl.SSLContext, timeout: float = 5.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.server + path, context=ctx, timeout=timeout) as resp:
                return resp.status, resp.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def _wait_ready(self, deadline: float) -> None:
        ctx = self._ssl_context()
        # readyz covers etcd and the post-start hooks (RBAC bootstrap roles, system namespaces,
        # priority classes); then check for the objects tests rely on explicitly.
        checks = [
            ("/readyz", "ok"),
            ("/apis/rbac.authorization.k8s.io/v1/clusterroles/cluster-admin", None),
            ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/cluster-admin", None),
            ("/api/v1/namespaces/default", None),
        ]
        last = ""
        for path, body in checks:
            while True:
                for name, proc in (("etcd", self.etcd), ("kube-apiserver", self.apiserver)):
                    if proc is not None and proc.poll() is not None:
                        raise self._failure(f"{name} exited with code {proc.returncode} during startup")
                try:
                    status, text = self._get(path, ctx)
                    last = f"GET {path}: {status} {text[:500]}"
                    if status == 200 and (body is None or text.strip() == body):
                        break
                except (OSError, ssl.SSLError) as exc:
                    last = f"GET {path}: {exc}"
                if time.monotonic() > deadline:
                    raise self._failure(f"kube-apiserver not ready after {self.startup_timeout:.0f}s; last check: {last}")
                time.sleep(0.25)

    # ---------------------------------------------------------------- kubeconfig & kubectl

    def _ca_data(self) -> str:
        return base64.b64encode(Path(self.ca_file).read_bytes()).decode()

    def _write_kubeconfig(self, path: Path, user: str, credentials: dict[str, str], namespace: str | None = None) -> str:
        context: dict[str, str] = {"cluster": "pfo-test", "user": user}
        if namespace:
            context["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "pfo-test", "cluster": {"server": self.server, "certificate-authority-data": self._ca_data()}}],
            "users": [{"name": user, "user": credentials}],
            "contexts": [{"name": user, "context": context}],
            "current-context": user,
            "preferences": {},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        # JSON is valid YAML, which every kubeconfig reader accepts.
        path.write_text(json.dumps(config, indent=2) + "\n")
        path.chmod(0o600)
        return str(path)

    def _write_admin_kubeconfig(self) -> None:
        assert self.dir is not None
        pki = self._pki
        self.kubeconfig = self._write_kubeconfig(
            self.dir / "admin.kubeconfig",
            ADMIN_USER,
            {
                "client-certificate-data": base64.b64encode(pki.admin_cert_file.read_bytes()).decode(),
                "client-key-data": base64.b64encode(pki.admin_key_file.read_bytes()).decode(),
            },
        )

    @property
    def kubectl_path(self) -> str:
        """kubectl matching the API server (built with it) if available, else the one on PATH."""
        if self._kubectl_bin is None:
            candidate = self.bin_dir / "kubectl" if self.bin_dir else None
            if candidate is not None and os.access(candidate, os.X_OK):
                self._kubectl_bin = str(candidate)
            else:
                found = shutil.which("kubectl")
                if not found:
                    raise ControlPlaneError("no kubectl: not in the binaries dir nor on PATH")
                self._kubectl_bin = found
        return self._kubectl_bin

    def env(self) -> dict[str, str]:
        """os.environ with KUBECONFIG pointing at the admin kubeconfig (for subprocesses)."""
        return {**os.environ, "KUBECONFIG": self.kubeconfig}

    def kubectl(
        self,
        *args: str,
        kubeconfig: str | os.PathLike[str] | None = None,
        check: bool = True,
        input: str | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as admin (or with the given kubeconfig); text stdout/stderr are captured."""
        if not self.kubeconfig:
            raise ControlPlaneError("control plane not started")
        cmd = [self.kubectl_path, f"--kubeconfig={kubeconfig or self.kubeconfig}", *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def apply(self, *objects: dict[str, Any]) -> None:
        """`kubectl apply` the given objects as admin."""
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))

    def wait_for_crds(self) -> None:
        """The operator's CRDs (applied by the caller) are served."""
        crds = ("crd/prefectflowdeployments.pfo.dev", "crd/prefectworkpools.pfo.dev")
        self.kubectl("wait", "--for=condition=Established", *crds, "--timeout=60s")

    def ensure_namespace(self, name: str, *, default_service_account: bool = True) -> None:
        """Create the namespace if missing, and (there is no controller-manager) its `default` ServiceAccount,
        without which the ServiceAccount admission plugin rejects pods that name none."""
        objects: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}]
        if default_service_account:
            objects.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": name}})
        self.apply(*objects)

    def create_service_account(self, namespace: str, name: str) -> None:
        """Create the namespace (with its default ServiceAccount) and the ServiceAccount if missing."""
        self.ensure_namespace(namespace)
        self.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}})

    def service_account_token(self, namespace: str, name: str, duration: str = "24h") -> str:
        """A bound token for the ServiceAccount from the TokenRequest API."""
        return self.kubectl("create", "token", name, "-n", namespace, f"--duration={duration}").stdout.strip()

    def service_account_kubeconfig(self, namespace: str, name: str, *, duration: str = "24h") -> str:
        """Create namespace/ServiceAccount if needed and write a kubeconfig that authenticates with its token."""
        assert self.dir is not None, "control plane not started"
        self.create_service_account(namespace, name)
        token = self.service_account_token(namespace, name, duration)
        user = f"system:serviceaccount:{namespace}:{name}"
        return self._write_kubeconfig(
            self.dir / "kubeconfigs" / f"sa-{namespace}-{name}.kubeconfig", user, {"token": token}, namespace
        )


class _PortInUse(ControlPlaneError):
    pass


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.controlplane", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-kubeconfig", metavar="PATH", help="also copy the admin kubeconfig to PATH (kept after exit)")
    parser.add_argument("--timeout", type=float, default=None, help="startup timeout in seconds (default 90)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, etcd data) on exit")
    opts = parser.parse_args(argv)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    # Started in the background of a non-interactive shell, a process inherits SIGINT as
    # ignored, and Python then leaves it so: Ctrl-C (or a test's SIGINT) must still stop it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cp = ControlPlane(startup_timeout=opts.timeout, keep_dir=opts.keep or None)
    try:
        cp.start()
        kubeconfig = cp.kubeconfig
        if opts.write_kubeconfig:
            target = Path(opts.write_kubeconfig).resolve()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cp.kubeconfig, target)
            target.chmod(0o600)
            kubeconfig = str(target)
        print(f"controlplane: kube-apiserver {cp.server} (logs in {cp.dir}); Ctrl-C to stop", file=sys.stderr)
        print(f"export KUBECONFIG={kubeconfig}", flush=True)
        while True:
            for name, proc in (("kube-apiserver", cp.apiserver), ("etcd", cp.etcd)):
                if proc is None or proc.poll() is not None:
                    code = proc.returncode if proc else "?"
                    print(f"controlplane: {name} exited ({code}):\n{_tail(cp._log(name))}", file=sys.stderr)
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        print("controlplane: stopping", file=sys.stderr)
        return 0
    except ControlPlaneError as exc:
        print(f"controlplane: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the cleanup
        cp.stop()


if __name__ == "__main__":
    sys.exit(main())
