"""Every check over one tree (deploy/ + istio/): the real tree in the tests, broken copies in test_broken_copies."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sagashop.kit.settings import PARTS

from .canary_checks import canary_problems
from .edge_checks import edge_problems
from .env_checks import config_problems, coverage_problems, env_problems
from .mail_checks import mail_problems
from .manifests import Obj, job_templates, load_yaml_dir, of_kind, overlays, pod_labels, render
from .mesh_checks import canary_layout_problems, mesh_problems, method_problems
from .nats_checks import nats_problems
from .pod_checks import database_problems, drain_problems
from .schema_checks import is_istio, istio_problems, kubernetes_problems
from .tracing_checks import tracing_problems
from .workload_checks import workload_problems


def versions_deployed(objs: list[Obj]) -> set[str]:
    return {pod_labels(d).get("version", "") for d in of_kind(objs, "Deployment")} & {"v1", "v2"}


def external_secrets(objs: list[Obj]) -> frozenset[str]:
    """An overlay that renders no Secret (production) expects its Secrets to be created before it is applied."""
    return frozenset() if of_kind(objs, "Secret") else frozenset({"sagashop-secrets"})


def mesh_of(objs: list[Obj]) -> list[Obj]:
    """The Istio objects of an overlay: istio/ as the overlay patches it, and those it brings itself
    (components/observability's AuthorizationPolicies)."""
    return list(filter(is_istio, objs))


def overlay_problems(objs: list[Obj], overlay_dir: Path) -> list[str]:
    mesh = mesh_of(objs)
    return [*kubernetes_problems(objs), *istio_problems(mesh), *method_problems(mesh),
            *workload_problems(objs, external_secrets(objs)), *env_problems(objs), *config_problems(objs),
            *coverage_problems(objs), *mesh_problems(mesh, objs, versions_deployed(objs)),
            *tracing_problems(mesh, objs), *edge_problems(mesh, overlay_dir), *canary_problems(objs),
            *database_problems(objs, mesh), *drain_problems(objs), *nats_problems(mesh, objs),
            *mail_problems(mesh, objs, overlay_dir)]


def part_files_problems(istio_dir: Path) -> list[str]:
    """istio/<part>.yaml for every part: a DestinationRule and a VirtualService laid out for canaries."""
    problems, everything = [], load_yaml_dir(istio_dir)
    for part in PARTS:
        docs = [d for d in everything if d["_file"] == f"{part}.yaml"]
        if sorted(d["kind"] for d in docs if d["kind"] != "Gateway") != ["DestinationRule", "VirtualService"]:
            problems.append(f"{part}.yaml: needs one DestinationRule and one VirtualService")
        problems += [p for vs in of_kind(docs, "VirtualService") for p in canary_layout_problems(vs)]
    return problems


def istio_tree_problems(istio_dir: Path) -> list[str]:
    istio = load_yaml_dir(istio_dir)
    return [*istio_problems(istio), *method_problems(istio), *part_files_problems(istio_dir)]


def all_problems(root: Path) -> list[str]:
    """Renders every overlay of root/deploy (istio/ included) and checks it; kustomize's refusals are problems too."""
    problems = istio_tree_problems(root / "istio")
    with ThreadPoolExecutor() as pool:  # kustomize runs in a process of its own
        trees = list(pool.map(render_or_refusal, overlays(root / "deploy")))
    for overlay, objs in zip(overlays(root / "deploy"), trees, strict=True):
        problems += [objs] if isinstance(objs, str) else [
            f"{overlay.name}: {p}" for p in overlay_problems(job_templates(objs, root), overlay)]
    return problems


def render_or_refusal(overlay: Path) -> list[Obj] | str:
    try:
        return render(overlay)
    except RuntimeError as e:
        return str(e)
