"""The rendered overlays (with the Jobs they let one create) and istio/'s files, read once per session; without
kubectl the tests skip (and fail on CI)."""

import pytest

from .manifests import ROOT, Obj, job_templates, kubectl_or_skip, load_yaml_dir, overlays, render

OVERLAYS = [p.name for p in overlays(ROOT / "deploy")]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Obj]]:
    kubectl_or_skip()
    trees = {p.name: job_templates(render(p), ROOT) for p in overlays(ROOT / "deploy")}
    return {**trees, "base": render(ROOT / "deploy" / "k8s" / "base")}


@pytest.fixture(scope="session")
def istio() -> list[Obj]:
    return load_yaml_dir(ROOT / "istio")
