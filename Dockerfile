# TensorQ's images, one file, built by docker-compose.yml (or by hand):
#   docker build --target api        -t tensorq-api .         the API, migrations, keys, autoscaler, Flower (no TensorFlow)
#   docker build --target worker-cpu -t tensorq-worker-cpu .  a worker with TensorFlow's CPU build
#   docker build --target worker-gpu -t tensorq-worker-gpu .  a worker with TensorFlow and its CUDA wheels (GPU hosts)
# Base image and index are build arguments, so the same file builds where no registry or index is reachable:
# deploy/offline-images.sh makes local stand-ins and fills deploy/wheelhouse/ (see docs/deploy.md).
# Each stage installs its extra from pyproject.toml: dependencies first (a layer code changes do not rebuild),
# then the project itself without dependencies. Wheels are bind-mounted, never copied into a layer.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS base
# 1: install only from deploy/wheelhouse (offline); anything else: the configured index, helped by the wheelhouse.
ARG PIP_NO_INDEX=0
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH \
    TENSORQ_ARTIFACT_DIR=/data/artifacts
RUN python3 -m venv /opt/venv \
    && useradd --create-home --uid 10001 --user-group tensorq \
    && mkdir -p /data/artifacts && chown -R tensorq:tensorq /data
# `pipi FILE` installs a requirements file; `pipi-project` installs the project from the build context
# mounted at /src (nothing of it stays in a layer but the installed package).
RUN printf '%s\n' '#!/bin/sh' 'set -e' \
      'index=""; [ "$PIP_NO_INDEX" = 1 ] && index="--no-index"' \
      'pip install -q $index --find-links /wheels -r "$1"' \
      > /usr/local/bin/pipi \
    && printf '%s\n' '#!/bin/sh' 'set -e' \
      'index=""; [ "$PIP_NO_INDEX" = 1 ] && index="--no-index"' \
      'mkdir /tmp/src && cd /src && cp -r pyproject.toml README.md tensorq api db migrations ml worker bench /tmp/src/' \
      'cd / && pip install -q $index --find-links /wheels --no-deps /tmp/src && rm -rf /tmp/src' \
      > /usr/local/bin/pipi-project \
    && chmod +x /usr/local/bin/pipi /usr/local/bin/pipi-project

# Each image's requirements, read from pyproject.toml's extras. A change elsewhere in pyproject.toml (dev tools,
# pytest settings) gives the same files, so the dependency layers below stay cached.
FROM base AS requirements
COPY pyproject.toml deploy/requirements.py /build/
RUN python3 /build/requirements.py /build/pyproject.toml api,autoscale,monitoring > /build/api.txt \
    && python3 /build/requirements.py /build/pyproject.toml worker-cpu > /build/worker-cpu.txt \
    && python3 /build/requirements.py /build/pyproject.toml gpu > /build/worker-gpu.txt

FROM base AS api
COPY --from=requirements /build/api.txt /opt/requirements.txt
RUN --mount=type=bind,source=deploy/wheelhouse,target=/wheels pipi /opt/requirements.txt
RUN --mount=type=bind,source=.,target=/src,rw --mount=type=bind,source=deploy/wheelhouse,target=/wheels pipi-project
USER tensorq
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=6 \
    CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"
CMD ["tensorq", "api", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS worker-cpu
COPY --from=requirements /build/worker-cpu.txt /opt/requirements.txt
RUN --mount=type=bind,source=deploy/wheelhouse,target=/wheels pipi /opt/requirements.txt
RUN --mount=type=bind,source=.,target=/src,rw --mount=type=bind,source=deploy/wheelhouse,target=/wheels pipi-project
USER tensorq
WORKDIR /data
ENV TENSORQ_GPU=none TF_CPP_MIN_LOG_LEVEL=2
HEALTHCHECK --interval=30s --timeout=15s --start-period=120s --retries=3 CMD ["python3", "-m", "worker.healthcheck"]
CMD ["tensorq", "worker", "--gpu", "none"]

# Only for the compose profile `gpu`: several GB of CUDA wheels. Never built on a CPU host by default.
FROM base AS worker-gpu
COPY --from=requirements /build/worker-gpu.txt /opt/requirements.txt
RUN --mount=type=bind,source=deploy/wheelhouse,target=/wheels pipi /opt/requirements.txt
RUN --mount=type=bind,source=.,target=/src,rw --mount=type=bind,source=deploy/wheelhouse,target=/wheels pipi-project
USER tensorq
WORKDIR /data
ENV TF_CPP_MIN_LOG_LEVEL=2
HEALTHCHECK --interval=30s --timeout=15s --start-period=180s --retries=3 CMD ["python3", "-m", "worker.healthcheck"]
CMD ["tensorq", "worker", "--gpu", "0"]
