"""The canary weights (v1 / v2) of each part, in the files of istio/ and, through kubectl, in a cluster.

Each part's weights are the two destinations of the default route (the last route, the one without `match`) of its
VirtualService in istio/<part>.yaml. `set` rewrites those two numbers in place: ruamel.yaml's round-trip mode keeps
the file's comments, key order and flow style, so a diff shows only the weights.
"""

import json
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from io import StringIO
from pathlib import Path
from typing import Any

import typer
from ruamel.yaml import YAML

from sagashop.kit.settings import PARTS

ISTIO_DIR = Path(__file__).resolve().parents[2] / "istio"
NAMESPACE = "sagashop"
SAGA_PARTS = ("order", "inventory", "payment", "shipping")  # the parts a checkout saga calls
KUBECTL_TIMEOUT = 60.0  # seconds for one kubectl command


class CanaryError(Exception):
    """A request the files cannot satisfy; the command exits with code 2 and this message."""


def round_trip_yaml() -> YAML:
    yaml = YAML()  # round-trip mode: comments, order and flow style survive a load and dump
    yaml.width = 4096
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=2, offset=0)
    return yaml


def file_of(service: str, istio_dir: Path) -> Path:
    path = istio_dir / f"{service}.yaml"
    if service not in PARTS or not path.is_file():
        raise CanaryError(f"unknown service {service!r}: expected one of {', '.join(PARTS)} "
                          f"with a file {istio_dir}/<service>.yaml")
    return path


def default_route(virtual_service: Mapping[str, Any]) -> Sequence[Any]:
    """The v1 and v2 destinations of the route that takes every call no header pinned."""
    routes = virtual_service.get("spec", {}).get("http") or []
    if not routes or "match" in routes[-1]:
        raise CanaryError(f"VirtualService {virtual_service['metadata']['name']!r} has no default (unmatched) route")
    destinations = routes[-1].get("route") or []
    if sorted(d["destination"].get("subset", "") for d in destinations) != ["v1", "v2"]:
        raise CanaryError(f"the default route of {virtual_service['metadata']['name']!r} is not split v1 / v2")
    return sorted(destinations, key=lambda d: d["destination"]["subset"])


def weights_of(virtual_service: Mapping[str, Any]) -> tuple[int, int]:
    v1, v2 = default_route(virtual_service)
    return int(v1.get("weight", 0)), int(v2.get("weight", 0))


def virtual_service_in(docs: Sequence[Any], path: Path) -> Any:
    for doc in docs:
        if doc and doc.get("kind") == "VirtualService":
            return doc
    raise CanaryError(f"{path} holds no VirtualService")


def file_weights(service: str, istio_dir: Path) -> tuple[int, int]:
    path = file_of(service, istio_dir)
    return weights_of(virtual_service_in(list(round_trip_yaml().load_all(path.read_text())), path))


def set_weights(service: str, v2_percent: int, istio_dir: Path) -> Path:
    """Rewrites the default route of the service to v1 100-P / v2 P; returns the file."""
    if not 0 <= v2_percent <= 100:
        raise CanaryError(f"percent must be within 0..100, not {v2_percent}")
    path = file_of(service, istio_dir)
    yaml = round_trip_yaml()
    docs = list(yaml.load_all(path.read_text()))
    v1, v2 = default_route(virtual_service_in(docs, path))
    v1["weight"], v2["weight"] = 100 - v2_percent, v2_percent
    out = StringIO()
    yaml.dump_all(docs, out)
    path.write_text(out.getvalue())
    return path


def kubectl(*args: str, context: str | None = None) -> str:
    if shutil.which("kubectl") is None:
        raise CanaryError("kubectl is not on PATH")
    command = ["kubectl", *(["--context", context] if context else []), *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=KUBECTL_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise CanaryError(f"{' '.join(command)} did not answer within {KUBECTL_TIMEOUT:.0f}s") from e
    if done.returncode != 0:
        raise CanaryError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


def ready_replicas(part: str, context: str | None) -> int:
    """The ready pods of the part's canary Deployment `<part>-v2`."""
    deployment = json.loads(kubectl("get", "deployment", f"{part}-v2", "-n", NAMESPACE, "-o", "json", context=context))
    return int(deployment.get("status", {}).get("readyReplicas", 0))


def cluster_weights(context: str | None) -> dict[str, tuple[int, int]]:
    found = json.loads(kubectl("get", "virtualservice", "-n", NAMESPACE, "-o", "json", context=context))
    weights = {}
    for item in found.get("items", []):
        if item["metadata"]["name"] in PARTS:
            try:
                weights[item["metadata"]["name"]] = weights_of(item)
            except CanaryError:
                continue
    return weights


def status_lines(istio_dir: Path, cluster: dict[str, tuple[int, int]] | None = None) -> list[str]:
    header = f"{'SERVICE':<14}{'FILE v1/v2':<14}" + ("CLUSTER v1/v2" if cluster is not None else "")
    lines = [header.rstrip()]
    for service in PARTS:
        if not (istio_dir / f"{service}.yaml").is_file():
            continue
        v1, v2 = file_weights(service, istio_dir)
        line = f"{service:<14}{f'{v1}/{v2}':<14}"
        if cluster is not None:
            live = cluster.get(service)
            line += "-" if live is None else f"{live[0]}/{live[1]}" + ("" if live == (v1, v2) else "  (differs)")
        lines.append(line.rstrip())
    return lines


def shift(service: str, v2_percent: int, istio_dir: Path, apply: bool, context: str | None,
          say: Callable[[str], Any] = typer.echo) -> None:
    """New weights in the file; with `apply`, in the cluster too, and the orchestrators pin that share of new
    sagas to v2 (a rolling restart: sagas in flight resume from their log, on the route they started on)."""
    path = set_weights(service, v2_percent, istio_dir)
    say(f"{service}: v1 {100 - v2_percent} / v2 {v2_percent} ({path})")
    if apply:
        say(kubectl("apply", "-f", str(path), context=context).rstrip())
        say(kubectl("set", "env", "deployment", "-l", "app=orchestrator", "-n", NAMESPACE,
                    f"SAGASHOP_CANARY_PERCENT={v2_percent}", context=context).rstrip())
