"""The rendered overlays and istio/, read once per session; without kubectl the tests skip (and fail on CI)."""

import pytest

from .manifests import ROOT, Obj, kubectl_or_skip, load_yaml_dir, overlays, render

OVERLAYS = [p.name for p in overlays(ROOT / "deploy")]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Obj]]:
    kubectl_or_skip()
    trees = {p.name: render(p) for p in overlays(ROOT / "deploy")}
    return {**trees, "base": render(ROOT / "deploy" / "k8s" / "base")}


@pytest.fixture(scope="session")
def istio() -> list[Obj]:
    return load_yaml_dir(ROOT / "istio")
