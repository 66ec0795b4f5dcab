#!/bin/sh
# Install the operator into a fresh virtual environment, exactly as the container image
# does. The Dockerfile runs this script, and tests/chart/test_image_install.py runs it
# too, so the image's install steps are tested without a Docker engine.
#
#   deploy/install.sh VENV SRC     SRC: a checkout (pyproject.toml, README.md, operator/, deploy/)
#
# Every runtime dependency comes from deploy/requirements.lock at its exact version
# (--no-deps: nothing unlisted can slip in); `pip check` then proves the lock satisfies
# pyproject.toml. The build backend is pinned by deploy/build-constraints.txt.
# pip and setuptools are removed afterwards: the image needs neither at run time.
set -eu
venv=$1
src=$2
python3 -m venv "$venv"
pip="$venv/bin/python -m pip --no-cache-dir --disable-pip-version-check --no-input"
$pip install --quiet --no-deps --requirement "$src/deploy/requirements.lock"
PIP_CONSTRAINT="$src/deploy/build-constraints.txt" $pip install --quiet --no-deps "$src"
$pip check
$pip uninstall --quiet --yes pip setuptools
