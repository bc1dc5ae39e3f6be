# Two commands do all set-up: `make run` starts the shop, `make test` runs the test suite.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
PROTOS := $(wildcard protos/sagashop/v1/*.proto)
STUBS := libs/sagashop/v1/.generated
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test setup stubs lint clean browser prometheus shellcheck

run: setup
	$(VENV)/bin/sagashop up

test: setup browser prometheus shellcheck lint
	$(VENV)/bin/pytest -q

setup: $(VENV)/.synced $(STUBS)

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --extra lab --python $(PYTHON)
	touch $@

$(STUBS): $(VENV)/.synced $(PROTOS)
	$(VENV)/bin/python -m grpc_tools.protoc -I protos --python_out=libs --grpc_python_out=libs --pyi_out=libs $(PROTOS)
	touch $@

stubs: $(STUBS)

# Chromium for the console's browser test (tests/e2e/test_console.py): Debian's package, installed when missing and
# we are root; otherwise that test skips with the reason (and fails on CI).
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y chromium; fi

# Prometheus for the canary analysis test (tests/faults/test_canary_run.py, which starts its own): Debian's package,
# installed when missing and we are root; otherwise that test skips with the reason (and fails on CI).
prometheus:
	@if [ ! -x /usr/bin/prometheus ] && [ "$$(id -u)" = 0 ]; then \
		apt-get update && apt-get install -y --no-install-recommends prometheus; fi

# shellcheck for the kind scripts' test (tests/deploy/test_kind.py): Debian's package, installed when missing and we
# are root; otherwise that test skips with the reason (and fails on CI).
shellcheck:
	@if [ ! -x /usr/bin/shellcheck ] && [ "$$(id -u)" = 0 ]; then \
		apt-get update && apt-get install -y --no-install-recommends shellcheck; fi

# Style and types: ruff, then mypy over libs/, services/ and tools/ (its settings: pyproject.toml [tool.mypy]).
lint: setup
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync mypy

clean:
	rm -rf $(VENV) .tools .data .mypy_cache libs/sagashop/v1/*_pb2*.py libs/sagashop/v1/*_pb2*.pyi $(STUBS)

# A local Kubernetes (kind) cluster with Istio running the shop at http://127.0.0.1:8080 (docs/kubernetes.md): needs
# docker, kind >= 0.33, kubectl >= 1.34 and istioctl 1.30-1.31. OVERLAY=kind-canary for the canary overlay, FORCE=1
# to go on when Docker's CPUs or memory look too small.
.PHONY: kind-up kind-down
kind-up: setup
	deploy/kind/up.sh

kind-down:
	deploy/kind/down.sh
