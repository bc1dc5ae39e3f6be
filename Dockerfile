# syntax=docker/dockerfile:1
# One image for every part of the shop: `sagashop serve <part>` (the part is the argument, gateway by default).
#   docker build -t sagashop:0.1.0 .
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

# --- runtime: the virtual environment and the code, run as an unprivileged user ----------------------------------
FROM ${PYTHON_IMAGE}
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
