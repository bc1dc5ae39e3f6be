"""What deploy/kind/up.sh applies, and what it asks of the kind node.

The stack is an overlay of deploy/k8s (kind or kind-canary) plus components/monitoring, with every `sagashop` image
set to the tag of the working tree's build. It is composed in a kustomization of its own, without `namespace:`,
because an overlay's `namespace: sagashop` would move Prometheus and metrics-server into the shop's namespace.

  stack.py render OVERLAY [--tag TAG]            the manifests, on stdout
  stack.py requests OVERLAY [--docker "N BYTES"]  CPU and memory requested per group; with --docker (Docker's CPUs
                                                  and memory), exit 3 when they do not fit
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ROOT / "deploy" / "k8s" / "overlays"
MONITORING = ROOT / "deploy" / "k8s" / "components" / "monitoring"
ISTIO_OPERATOR = ROOT / "deploy" / "kind" / "istio.yaml"
MESH_NAMESPACES = {"sagashop"}  # labelled istio-injection=enabled: every pod there gets a sidecar
PART_OF = "app.kubernetes.io/part-of=sagashop"
GIB = 1024**3
# Requests of kind's own pods (kube-system of a one-node cluster): the API server 250m, the controller manager
# 200m, etcd 100m/100Mi, the scheduler 100m, CoreDNS 2 x 100m/70Mi, kindnet 100m/50Mi.
KIND_SYSTEM_CPU, KIND_SYSTEM_MEMORY = 0.95, 290 * 1024**2
# The share of Docker's CPUs and memory the requests may take: the rest is for Docker itself, image loads and the
# pods' use above their requests.
FIT = 0.85
UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": GIB, "K": 1000, "M": 1000**2, "G": 1000**3}


class StackError(Exception):
    """A bad argument or a tree kustomize refuses, told as one line."""


@dataclass(frozen=True)
class Requests:
    cpu: float = 0.0  # cores
    memory: int = 0  # bytes

    def __add__(self, other: "Requests") -> "Requests":
        return Requests(self.cpu + other.cpu, self.memory + other.memory)

    def __mul__(self, times: int) -> "Requests":
        return Requests(self.cpu * times, self.memory * times)

    def show(self) -> str:
        return f"{self.cpu:5.2f} CPU {self.memory / GIB:5.2f} GiB"


def quantity(value: Any, memory: bool) -> float:
    """A Kubernetes quantity: `100m`, `0.5` or `2` cores; `128Mi`, `1Gi` or plain bytes."""
    text = str(value)
    if not memory:
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    unit = next((u for u in UNITS if text.endswith(u)), "")
    return float(text[: len(text) - len(unit)]) * UNITS.get(unit, 1)


def requested(resources: dict[str, Any] | None) -> Requests:
    asked = (resources or {}).get("requests", {})
    return Requests(quantity(asked.get("cpu", 0), False), int(quantity(asked.get("memory", 0), True)))


def render(overlay: str, tag: str | None = None) -> str:
    """`kubectl kustomize` of the overlay plus the monitoring component (and the image tag), as YAML."""
    if not (OVERLAYS / overlay / "kustomization.yaml").is_file():
        known = ", ".join(sorted(p.name for p in OVERLAYS.iterdir() if p.is_dir()))
        raise StackError(f"no overlay {overlay!r} in deploy/k8s/overlays (there are: {known})")
    scratch = ROOT / ".data"  # kustomize takes relative paths only, so the kustomization sits inside the tree
    scratch.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="kind-stack-") as work:
        kustomization: dict[str, Any] = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": [os.path.relpath(OVERLAYS / overlay, work)],
            "components": [os.path.relpath(MONITORING, work)],
            # up.sh applies with `--prune -l PART_OF`, which also skips any object without the label
            "labels": [{"pairs": dict([PART_OF.split("=")]), "includeTemplates": True}]}
        if tag:
            kustomization["images"] = [{"name": "sagashop", "newTag": tag}]
        (Path(work) / "kustomization.yaml").write_text(json.dumps(kustomization))  # JSON is YAML
        done = subprocess.run(["kubectl", "kustomize", work], capture_output=True, text=True, check=False,
                              timeout=120)
    if done.returncode != 0:
        raise StackError(f"kubectl kustomize failed: {done.stderr.strip()}")
    return done.stdout


def pods(objs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """Each Deployment and StatefulSet with the pods it runs at rest (an autoscaler's minimum if one scales it)."""
    least = {(h["metadata"].get("namespace"), h["spec"]["scaleTargetRef"]["name"]): h["spec"].get("minReplicas", 1)
             for h in objs if h.get("kind") == "HorizontalPodAutoscaler"}
    return [(w, w["spec"].get("replicas", least.get((w["metadata"].get("namespace"), w["metadata"]["name"]), 1)))
            for w in objs if w.get("kind") in ("Deployment", "StatefulSet")]


def pod_requests(workload: dict[str, Any], sidecar: Requests) -> Requests:
    """What one pod asks of the node: its containers (and its sidecar) or its largest init container."""
    spec = workload["spec"]["template"]["spec"]
    running = sum((requested(c.get("resources")) for c in spec["containers"]), Requests())
    injected = workload["spec"]["template"]["metadata"].get("annotations", {}).get("sidecar.istio.io/inject")
    if workload["metadata"].get("namespace") in MESH_NAMESPACES and injected != "false":
        running += sidecar
    first = [requested(c.get("resources")) for c in spec.get("initContainers", [])]
    return Requests(max([running.cpu, *(r.cpu for r in first)]), max([running.memory, *(r.memory for r in first)]))


def istio(operator: dict[str, Any]) -> tuple[Requests, Requests]:
    """istiod plus the ingress gateways, and one sidecar, as the IstioOperator file sets them."""
    spec = operator["spec"]
    control = requested(spec["components"]["pilot"]["k8s"].get("resources"))
    for gateway in spec["components"].get("ingressGateways", []):
        control += requested(gateway["k8s"].get("resources")) if gateway.get("enabled") else Requests()
    return control, requested(spec["values"]["global"]["proxy"]["resources"])


def totals(overlay: str) -> dict[str, Requests]:
    """The requests of each group of pods of the stack (the overlay at rest), and their total."""
    control, sidecar = istio(YAML(typ="safe").load(ISTIO_OPERATOR.read_text()))
    groups = {"istio (istiod, ingress gateway)": control, "shop (with sidecars)": Requests(),
              "monitoring (prometheus, metrics-server)": Requests(),
              "kind's own kube-system": Requests(KIND_SYSTEM_CPU, KIND_SYSTEM_MEMORY)}
    for workload, replicas in pods(list(filter(None, YAML(typ="safe").load_all(render(overlay))))):
        group = "shop (with sidecars)" if workload["metadata"].get("namespace") in MESH_NAMESPACES else \
            "monitoring (prometheus, metrics-server)"
        groups[group] += pod_requests(workload, sidecar) * replicas
    return {**groups, "total": sum(groups.values(), Requests())}


def fits(total: Requests, cpus: float, memory: int) -> bool:
    return total.cpu <= FIT * cpus and total.memory <= FIT * memory


def docker_resources(text: str) -> tuple[float, int]:
    """`docker info --format '{{.NCPU}} {{.MemTotal}}'`: CPUs and bytes."""
    try:
        cpus, memory = text.split()
        return float(cpus), int(memory)
    except ValueError:
        raise StackError(f"expected Docker's CPUs and memory in bytes (e.g. \"4 8589934592\"), got {text!r}") from None


def report(overlay: str, docker: str | None) -> int:
    groups = totals(overlay)
    print(f"requests of overlay {overlay} on the kind node:")
    for name, asked in groups.items():
        print(f"  {name:<42} {asked.show()}")
    if docker is None:
        return 0
    cpus, memory = docker_resources(docker)
    have = f"Docker has {cpus:g} CPUs and {memory / GIB:.1f} GiB"
    if fits(groups["total"], cpus, memory):
        print(f"{have}: it fits ({groups['total'].cpu / cpus:.0%} of the CPUs, "
              f"{groups['total'].memory / memory:.0%} of the memory requested)")
        return 0
    need = f"{groups['total'].cpu / FIT:.1f} CPUs and {groups['total'].memory / FIT / GIB:.1f} GiB"
    print(f"{have}: too little for overlay {overlay}, which wants at least {need}.\n"
          "Give Docker more (Docker Desktop: Settings > Resources; colima: colima start --cpu 4 --memory 8;\n"
          "Podman: podman machine set --cpus 4 --memory 8192), or try anyway with FORCE=1.", file=sys.stderr)
    return 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.kind.stack", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rendering = commands.add_parser("render", help="print the manifests up.sh applies")
    rendering.add_argument("overlay")
    rendering.add_argument("--tag", help="the image tag of every sagashop container")
    asking = commands.add_parser("requests", help="print the CPU and memory the stack requests")
    asking.add_argument("overlay")
    asking.add_argument("--docker", help="Docker's CPUs and memory in bytes: fail when the stack does not fit")
    args = parser.parse_args(argv)
    try:
        if args.command == "render":
            sys.stdout.write(render(args.overlay, args.tag))
            return 0
        return report(args.overlay, args.docker)
    except StackError as e:
        print(f"stack.py: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
