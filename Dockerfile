# syntax=docker/dockerfile:1
# One image for every part of the shop: `sagashop serve <part>` (the part is the argument, gateway by default).
#   docker build -t sagashop:0.1.0 .                              # the last stage, `app`
#   docker build --target tools -t sagashop-tools:0.1.0 .         # the lab's `sagashop` and kubectl (canary Job)
#   docker run --rm -p 8080:8080 sagashop:0.1.0               # the gateway alone; see deploy/ for the whole shop
#   docker run --rm sagashop:0.1.0 payment                   # any other part

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the locked dependencies, the generated gRPC stubs, the project (editable, as in a checkout) -------
FROM ${PYTHON_IMAGE} AS builder
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project
COPY protos/ protos/
COPY libs/ libs/
COPY services/ services/
COPY tools/cli.py tools/__init__.py tools/
# The stubs are generated, never committed (.gitignore); generate them before the project is installed.
RUN .venv/bin/python -m grpc_tools.protoc -I protos --python_out=libs --grpc_python_out=libs --pyi_out=libs \
        protos/sagashop/v1/*.proto \
    && uv sync --locked --no-dev \
    && .venv/bin/python -m compileall -q libs services tools

# --- tools-builder: the lab's dependencies (the `lab` extra) and tools/, and a kubectl pinned by its checksum -----
# The checksums are dl.k8s.io's for that release; a build for another architecture or version needs its own.
FROM builder AS tools-builder
ARG TARGETARCH=amd64
ARG KUBECTL_VERSION=v1.33.0
ARG KUBECTL_SHA256_amd64=9efe8d3facb23e1618cba36fb1c4e15ac9dc3ed5a2c2e18109e4a66b2bac12dc
ARG KUBECTL_SHA256_arm64=48541d119455ac5bcc5043275ccda792371e0b112483aa0b29378439cf6322b9
COPY tools/ tools/
RUN uv sync --locked --no-dev --extra lab \
    && .venv/bin/python -m compileall -q tools \
    && .venv/bin/python -c "import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], '/tmp/kubectl')" \
        "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${TARGETARCH}/kubectl" \
    && eval "expected=\${KUBECTL_SHA256_${TARGETARCH}}" \
    && echo "${expected}  /tmp/kubectl" | sha256sum --check --strict \
    && install -m 0755 /tmp/kubectl /usr/local/bin/kubectl

# --- app: the virtual environment and the code, run as an unprivileged user --------------------------------------
FROM ${PYTHON_IMAGE} AS app
RUN groupadd --gid 10001 sagashop \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sagashop
WORKDIR /app
# The project is installed in editable mode: .venv points at /app/libs and /app (services, and of tools/ only the
# `sagashop` command: the lab is not in the image), and the migrations are
# found next to the code (services/<name>/migrations), so both are copied to the same paths as in the builder.
COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /app/libs /app/libs
COPY --from=builder /app/services /app/services
COPY --from=builder /app/tools /app/tools
# Nothing is written but under /tmp (an emptyDir in Kubernetes; the root filesystem is read-only): SQLite files only
# when no SAGASHOP_DATABASE_URL is given.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SAGASHOP_DATA_DIR=/tmp/data \
    SAGASHOP_BIND=0.0.0.0
USER 10001:10001
EXPOSE 8080 50051 50052 50053 50054 50055 50056 9090
ENTRYPOINT ["sagashop", "serve"]
CMD ["gateway"]

# --- tools: the app image plus the lab (`sagashop canary run ... --cluster-only` in a Job, see
# deploy/k8s/components/canary/run-job.yaml), the same unprivileged user, nothing written but under /tmp ----------
FROM app AS tools
COPY --from=tools-builder /app/.venv /app/.venv
COPY --from=tools-builder /app/tools /app/tools
COPY --from=tools-builder /usr/local/bin/kubectl /usr/local/bin/kubectl
ENTRYPOINT ["sagashop"]
CMD ["--help"]

# --- the default target (a build without --target): the app image -----------------------------------------------
FROM app
