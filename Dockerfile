# syntax=docker/dockerfile:1
# prefect-flow-operator container image.
#
#   docker build -t prefect-flow-operator:dev .
#
# Two stages: the build stage creates a virtual environment with deploy/install.sh
# (exact pins from deploy/requirements.lock; tests/chart/test_image_install.py runs the
# same script, so these steps are tested without a Docker engine), the runtime stage
# copies only that venv onto a fresh slim base. No compiler, no pip in the final image.
#
# Runtime contract (the Helm chart relies on it):
#   - runs as the unprivileged user 10001:10001 (numeric, so runAsNonRoot can verify it);
#   - needs no writable path except /tmp (HOME and TMPDIR point there; the chart mounts
#     an emptyDir): bytecode is compiled at build time and never written at run time,
#     so readOnlyRootFilesystem: true works;
#   - entrypoint is the console script; liveness on :8080/healthz.
# Pin the base by digest in your registry mirror if you need bit-for-bit rebuilds:
#   --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:...
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first: this layer is cached until the lock changes.
COPY deploy/install.sh deploy/requirements.lock deploy/build-constraints.txt deploy/
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN sh deploy/install.sh /opt/pfo /src \
 && /opt/pfo/bin/python -m compileall -q -j 0 /opt/pfo/lib \
 && /opt/pfo/bin/prefect-flow-operator --help >/dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="prefect-flow-operator" \
      org.opencontainers.image.description="Kubernetes operator (kopf) that manages Prefect 3 deployments, work pools and concurrency limits as custom resources" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 pfo \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin pfo
COPY --from=build /opt/pfo /opt/pfo
ENV PATH=/opt/pfo/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["prefect-flow-operator"]
CMD ["--liveness=http://0.0.0.0:8080/healthz"]
