"""The Dockerfile, the kind scripts and the versions they pin agree with each other and with the tests."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .manifests import ROOT
from .schema_checks import KUBERNETES_VERSION

DOCKERFILE = (ROOT / "Dockerfile").read_text()
SCRIPTS = [ROOT / "deploy/kind/up.sh", ROOT / "deploy/kind/down.sh"]


def test_the_image_is_built_from_pinned_bases_and_runs_a_part_as_an_unprivileged_user() -> None:
    bases = re.findall(r"^ARG PYTHON_IMAGE=(\S+)", DOCKERFILE, re.M)
    assert bases and all(":" in b and not b.endswith(":latest") for b in bases)
    assert re.findall(r"^FROM (\S+)", DOCKERFILE, re.M) == ["${PYTHON_IMAGE}", "builder", "${PYTHON_IMAGE}", "app",
                                                           "app"]  # the last stage, the default target: the app
    assert re.findall(r"^USER (\S+)", DOCKERFILE, re.M) == ["10001:10001"]  # in app, so in tools too
    assert 'ENTRYPOINT ["sagashop", "serve"]' in DOCKERFILE
    assert "uv sync --locked --no-dev" in DOCKERFILE
    assert "SAGASHOP_DATA_DIR=/tmp/data" in DOCKERFILE


def test_the_image_generates_the_stubs_as_the_makefile_does() -> None:
    command = "-m grpc_tools.protoc -I protos --python_out=libs --grpc_python_out=libs --pyi_out=libs"
    assert command in DOCKERFILE
    assert command in (ROOT / "Makefile").read_text()
    assert "protos/sagashop/v1/*.proto" in DOCKERFILE


def test_the_build_context_leaves_out_local_state_and_generated_stubs() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".data", "libs/sagashop/v1/*_pb2*.py", "tests"} <= ignored


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_the_kind_scripts_are_strict_executable_bash(script: Path) -> None:
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert os.access(script, os.X_OK)
    if shutil.which("bash"):
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0


def test_up_waits_for_every_deployment_and_tells_how_to_open_jaeger() -> None:
    text = (ROOT / "deploy/kind/up.sh").read_text()
    assert re.search(r'for deployment in \$\(kubectl [^)]* get deployments -o name\); do\n'
                     r'.* rollout status "\$\{deployment\}"', text)
    assert "port-forward svc/jaeger 16686" in text


def test_the_kind_node_runs_the_kubernetes_version_the_tests_validate_against() -> None:
    cluster = yaml.safe_load((ROOT / "deploy/kind/cluster.yaml").read_text())
    (node,) = cluster["nodes"]
    assert re.fullmatch(r"kindest/node:v\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?", node["image"])
    assert node["image"].split(":v")[1].rsplit(".", 1)[0] == KUBERNETES_VERSION.rsplit(".", 1)[0]


def test_make_has_the_kind_targets() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "kind-up: setup\n\tdeploy/kind/up.sh" in makefile
    assert "kind-down:\n\tdeploy/kind/down.sh" in makefile


def test_the_tools_image_adds_the_lab_and_a_kubectl_checked_against_its_pinned_checksum() -> None:
    """Verified offline only: the download and the checksum's match happen in `docker build --target tools`."""
    tools = DOCKERFILE[DOCKERFILE.index("AS tools-builder"):DOCKERFILE.index("AS app")]
    assert re.search(r"^ARG KUBECTL_VERSION=v\d+\.\d+\.\d+$", tools, re.M)
    checksums = dict(re.findall(r"^ARG KUBECTL_SHA256_(\w+)=(\S+)$", tools, re.M))
    assert set(checksums) == {"amd64", "arm64"} and all(re.fullmatch(r"[0-9a-f]{64}", c) for c in checksums.values())
    assert "sha256sum --check --strict" in tools and "uv sync --locked --no-dev --extra lab" in tools
    stage = DOCKERFILE[DOCKERFILE.index("FROM app AS tools"):]
    assert "COPY --from=tools-builder /usr/local/bin/kubectl /usr/local/bin/kubectl" in stage
    assert 'ENTRYPOINT ["sagashop"]' in stage and "USER" not in stage  # the app stage's unprivileged user
    job = (ROOT / "deploy/k8s/components/canary/run-job.yaml").read_text()
    assert "docker build --target tools -t sagashop-tools:0.1.0 ." in job and "image: sagashop-tools:0.1.0" in job
