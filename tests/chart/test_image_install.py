"""The container image's install steps, without a Docker engine: copy what the Dockerfile
COPYs into a fresh directory, run the same deploy/install.sh into a clean venv (exact pins
from deploy/requirements.lock, --no-deps, `pip check`), then start the entrypoint the
image starts, as the image would: read-only code, no bytecode writes, HOME=/tmp."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def test_dockerfile_uses_install_script_non_root_and_console_entrypoint() -> None:
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", DOCKERFILE, re.MULTILINE)
    assert "RUN sh deploy/install.sh /opt/pfo /src" in DOCKERFILE
    assert re.search(r"^USER 10001:10001$", DOCKERFILE, re.MULTILINE)
    assert 'ENTRYPOINT ["prefect-flow-operator"]' in DOCKERFILE
    assert "PYTHONDONTWRITEBYTECODE=1" in DOCKERFILE and "HOME=/tmp" in DOCKERFILE


def _copied_sources() -> list[str]:
    """The paths the build stage COPYs from the context (relative to the repo)."""
    srcs: list[str] = []
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            srcs += line.split()[1:-1]
    return srcs


def test_dockerignore_lets_every_copied_file_in() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore
    for src in _copied_sources():
        assert src.rstrip("/") in allowed, f"{src} is COPYed but excluded by .dockerignore"


def test_lock_pins_every_dependency_exactly() -> None:
    lines = [ln for ln in (REPO / "deploy" / "requirements.lock").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[^\s=]+", ln) for ln in lines), lines
    names = {ln.split("==")[0].lower().replace("_", "-") for ln in lines}
    assert {"kopf", "pydantic", "httpx", "pyyaml"} <= names


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("image-src")
    for rel in _copied_sources():
        path = REPO / rel.rstrip("/")
        dest = src / rel.rstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
        else:
            shutil.copy2(path, dest)
    venv = tmp_path_factory.mktemp("image") / "opt-pfo"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")
    python_dir = str(Path(sys.executable).resolve().parent)  # a python3.11 like the base image's
    env["PATH"] = python_dir + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(
        ["sh", "deploy/install.sh", str(venv), str(src)],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    subprocess.run([str(venv / "bin" / "python"), "-m", "compileall", "-q", "-j", "0", str(venv / "lib")], check=True)
    return venv


def _run_as_image(venv: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.run(
        list(args), env={**base, **(env or {})}, capture_output=True, text=True, timeout=120, cwd="/tmp", check=False
    )


def _make_read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def test_installed_exactly_the_lock(image_venv: Path) -> None:
    freeze = _run_as_image(
        image_venv,
        "python",
        "-c",
        "import importlib.metadata as m; "
        "print('\\n'.join(sorted(f\"{d.metadata['Name']}=={d.version}\" for d in m.distributions())))",
    )
    installed = {ln.lower().replace("_", "-") for ln in freeze.stdout.split()}
    lock = {ln.lower().replace("_", "-") for ln in (REPO / "deploy" / "requirements.lock").read_text().split() if "==" in ln}
    assert installed - lock == {"prefect-flow-operator==0.1.0"}, installed ^ lock
    assert not lock - installed
    assert not (image_venv / "bin" / "pip").exists(), "pip is removed from the runtime venv"


def test_entrypoint_starts_from_a_read_only_install(image_venv: Path) -> None:
    _make_read_only(image_venv)
    try:
        before = sorted(str(p) for p in image_venv.rglob("*"))
        help_ = _run_as_image(image_venv, "prefect-flow-operator", "--help")
        assert help_.returncode == 0, help_.stderr
        assert "--liveness" in help_.stdout
        # The handlers import (registering with kopf) from the image's venv alone.
        imported = _run_as_image(
            image_venv,
            "python",
            "-c",
            "import kopf, prefect_flow_operator.handlers as h, prefect_flow_operator.__main__ as m;"
            "print(len(kopf.get_default_registry()._changing.get_all_handlers()), m.__file__)",
        )
        assert imported.returncode == 0, imported.stderr
        count, path = imported.stdout.split()
        assert int(count) > 0 and path.startswith(str(image_venv))
        # Misconfiguration fails fast with a message, before touching any cluster.
        bad = _run_as_image(
            image_venv, "prefect-flow-operator", env={"PFO_CLUSTER_NAME": "bad name!", "PREFECT_API_URL": "http://x/api"}
        )
        assert bad.returncode != 0 and "PFO_CLUSTER_NAME" in bad.stderr
        assert sorted(str(p) for p in image_venv.rglob("*")) == before, "running the image wrote into its install"
    finally:
        for path in [image_venv, *image_venv.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
