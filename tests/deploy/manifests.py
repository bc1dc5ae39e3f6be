"""Rendering and reading the deploy files: kustomize output and istio/ as plain dicts, plus small lookups."""

import copy
import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from sagashop.kit.settings import PARTS
from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "sagashop"
Obj = dict[str, Any]
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser: ten times faster on kustomize's output
# the protocols Istio reads from a Service port's appProtocol or from the <protocol>[-suffix] of its name
RUN_JOB = "deploy/k8s/components/canary/run-job.yaml"
PROTOCOLS = {"http", "http2", "https", "grpc", "grpc-web", "tcp", "tls", "udp", "mongo", "mysql", "redis"}


def kubectl_or_skip() -> str:
    """kubectl renders the overlays; without it the deploy tests skip locally and fail on CI."""
    return shutil.which("kubectl") or missing("kubectl (with its built-in kustomize) is not on PATH",
                                              "install kubectl to run the deploy tests")


def tree_digest(kustomization_dir: Path) -> str:
    """A digest of every file of the kustomize tree (deploy/k8s) the directory belongs to and of istio/ beside
    deploy/, which every overlay includes."""
    tree = next((p for p in (kustomization_dir, *kustomization_dir.parents) if p.name == "k8s"), kustomization_dir)
    digest = hashlib.sha256()
    for folder in (tree, tree.parent.parent / "istio"):
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(f"{path.relative_to(folder.parent)}\0".encode() + path.read_bytes() + b"\0")
    return f"{kustomization_dir.relative_to(tree)}:{digest.hexdigest()}"


_rendered: dict[str, list[Obj]] = {}


def render(kustomization_dir: Path) -> list[Obj]:
    """`kubectl kustomize DIR`, parsed (a tree already rendered comes from a cache); raises with kustomize's message
    when it refuses the tree."""
    key = tree_digest(kustomization_dir)
    if key not in _rendered:
        done = subprocess.run([kubectl_or_skip(), "kustomize", str(kustomization_dir)],
                              capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"kubectl kustomize {kustomization_dir} failed: {done.stderr.strip()}")
        _rendered[key] = [doc for doc in yaml.load_all(done.stdout, Loader=Loader) if doc]
    return copy.deepcopy(_rendered[key])


def job_templates(objs: list[Obj], root: Path) -> list[Obj]:
    """The Jobs created on demand (components/canary/run-job.yaml) with the objects of an overlay that renders what
    they need (the ServiceAccount they run as): each Job as `kubectl create -f` would send it."""
    if named(objs, "ServiceAccount", "canary-runner") is None:
        return objs
    return [*objs, *yaml.load_all((root / RUN_JOB).read_text(), Loader=Loader)]


def load_yaml_dir(directory: Path) -> list[Obj]:
    """Every document of every *.yaml under the directory (but kustomization.yaml), each tagged with its file."""
    docs = []
    for path in sorted(p for p in directory.rglob("*.yaml") if p.name != "kustomization.yaml"):
        for doc in yaml.load_all(path.read_text(), Loader=Loader):
            if doc:
                docs.append({**doc, "_file": str(path.relative_to(directory))})
    return docs


def overlays(deploy_dir: Path) -> list[Path]:
    return sorted(p for p in (deploy_dir / "k8s" / "overlays").iterdir() if (p / "kustomization.yaml").is_file())


def of_kind(objs: list[Obj], *kinds: str) -> list[Obj]:
    return [o for o in objs if o.get("kind") in kinds]


def named(objs: list[Obj], kind: str, name: str) -> Obj | None:
    return next((o for o in of_kind(objs, kind) if o["metadata"]["name"] == name), None)


def ref(obj: Obj) -> str:
    metadata = obj.get("metadata", {})
    return f"{obj.get('kind')}/{metadata.get('name') or metadata.get('generateName')}"


def workloads(objs: list[Obj]) -> list[Obj]:
    return of_kind(objs, "Deployment", "StatefulSet", "Job")


def pod_labels(workload: Obj) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def containers(workload: Obj) -> Iterator[Obj]:
    spec = workload["spec"]["template"]["spec"]
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


def part_of(workload: Obj) -> str | None:
    """The sagashop part a workload runs (`sagashop serve PART`), or None for PostgreSQL, Redis, ..."""
    main = workload["spec"]["template"]["spec"]["containers"][0]
    args = main.get("args") or []
    return args[0] if args and args[0] in PARTS else None


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def selected_workloads(objs: list[Obj], selector: dict[str, str]) -> list[Obj]:
    return [w for w in workloads(objs) if selects(selector, pod_labels(w))]


def container_ports(workload: Obj) -> dict[str | int, int]:
    """name -> port and port -> port of the workload's containers, to resolve a targetPort or a probe's port."""
    ports: dict[str | int, int] = {}
    for container in containers(workload):
        for port in container.get("ports", []):
            ports[port["containerPort"]] = port["containerPort"]
            if "name" in port:
                ports[port["name"]] = port["containerPort"]
    return ports


def short_host(host: str) -> str:
    """`payment`, `payment.sagashop` and `payment.sagashop.svc.cluster.local` all name the Service payment."""
    return host.split(".")[0]


def local_service(host: str) -> str | None:
    """The Service of the namespace a host names (`jaeger`, `jaeger.sagashop`, `jaeger.sagashop.svc.cluster.local`),
    or None for a host outside it (another namespace, a backend on the internet)."""
    name, *rest = host.split(".")
    return name if rest in ([], [NAMESPACE], [NAMESPACE, "svc"], [NAMESPACE, "svc", "cluster", "local"]) else None


def service_port(objs: list[Obj], service: str, port: int) -> Obj | None:
    """The port entry of a Service of the tree serving this port number, if there is one."""
    found = named(objs, "Service", service)
    return next((p for p in found["spec"]["ports"] if p["port"] == port), None) if found else None


def backends(objs: list[Obj], service: str, port: Obj) -> list[tuple[Obj, int | None]]:
    """Each workload the Service sends this port's connections to, with the container port they reach (None: none)."""
    selector = (named(objs, "Service", service) or {"spec": {}})["spec"].get("selector", {})
    target = port.get("targetPort", port["port"])
    return [(w, container_ports(w).get(target)) for w in selected_workloads(objs, selector)]


def named_protocol(port: Obj) -> str | None:
    """The protocol a Service port's name declares (`grpc-otlp`: grpc), if it declares one."""
    prefix = port.get("name", "").split("-")[0]
    return prefix if prefix in PROTOCOLS else None


def protocol(port: Obj) -> str | None:
    """How Istio reads a Service port: its appProtocol, else the protocol its name declares."""
    return port.get("appProtocol") or named_protocol(port)
