"""The canary weight of each part, and `shift`, which moves it in the files of istio/ and, through kubectl, in a
cluster.

A part's weight lives in two objects that move together:
- the default route of its VirtualService (istio/<part>.yaml: the last route, without `match`, split between the
  subsets v1 and v2), which sends the calls no `x-sagashop-route` header pins;
- the part's key of the ConfigMap sagashop-canary (istio/canary-weights.yaml), from which the orchestrators pin
  that share of new sagas to the part's v2.
The files are rewritten with ruamel.yaml's round-trip mode, which keeps comments, key order and flow style, so a diff
shows only the numbers.
"""

from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any, TypeVar

import typer
from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from sagashop.kit.settings import PARTS as PARTS
from sagashop.kit.settings import SAGA_PARTS as SAGA_PARTS

from .kube import CONFIGMAP as CONFIGMAP
from .kube import NAMESPACE as NAMESPACE
from .kube import CanaryError as CanaryError
from .kube import Obj, patch_configmap_weight, patch_json, virtual_service
from .kube import kubectl as kubectl
from .kube import ready_replicas as ready_replicas

ISTIO_DIR = Path(__file__).resolve().parents[2] / "istio"
WEIGHTS_FILE = "canary-weights.yaml"  # the ConfigMap sagashop-canary
T = TypeVar("T")


def round_trip_yaml() -> YAML:
    yaml = YAML()  # round-trip mode: comments, order and flow style survive a load and dump
    yaml.width = 4096
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=2, offset=0)
    return yaml


def edit(path: Path, change: Callable[[list[Any]], T]) -> tuple[T, str]:
    """Loads the file's documents and lets `change` edit them in place: what it returned, and the file's new text."""
    yaml = round_trip_yaml()
    docs = list(yaml.load_all(path.read_text()))
    result = change(docs)
    out = StringIO()
    yaml.dump_all(docs, out)
    return result, out.getvalue()


def rewrite(path: Path, change: Callable[[list[Any]], T]) -> T:
    result, text = edit(path, change)
    path.write_text(text)
    return result


def check_part(part: str) -> None:
    if part not in PARTS:
        raise CanaryError(f"unknown service {part!r}: expected one of {', '.join(PARTS)}")


def file_of(part: str, istio_dir: Path) -> Path:
    check_part(part)
    path = istio_dir / f"{part}.yaml"
    if not path.is_file():
        raise CanaryError(f"no file {path}: the VirtualService of {part} is kept there")
    return path


def weights_file(istio_dir: Path) -> Path:
    path = istio_dir / WEIGHTS_FILE
    if not path.is_file():
        raise CanaryError(f"no file {path}: the ConfigMap {CONFIGMAP} is kept there")
    return path


def is_split(route: Any) -> bool:
    return sorted(d.get("destination", {}).get("subset", "") for d in route.get("route") or []) == ["v1", "v2"]


def split_routes(vs: Any) -> list[int]:
    """Indexes of the routes split between v1 and v2: the default route, last, and any copy of it a fault made."""
    routes = vs.get("spec", {}).get("http") or []
    if not routes or "match" in routes[-1] or not is_split(routes[-1]):
        raise CanaryError(f"VirtualService {vs['metadata']['name']!r} has no default route split v1 / v2 "
                          "(the last route, without match)")
    return [i for i, route in enumerate(routes) if is_split(route)]


def weights_of(vs: Any) -> tuple[int, int]:
    split_routes(vs)
    weights = {d["destination"]["subset"]: int(d.get("weight", 0)) for d in vs["spec"]["http"][-1]["route"]}
    return weights["v1"], weights["v2"]


def weigh(vs: Any, percent: int) -> None:
    for i in split_routes(vs):
        for d in vs["spec"]["http"][i]["route"]:
            d["weight"] = percent if d["destination"]["subset"] == "v2" else 100 - percent


def weight_operations(vs: Obj, percent: int) -> list[Obj]:
    """The JSON patch that weighs a live VirtualService, testing each destination it rewrites as it was read."""
    operations: list[Obj] = []
    for i in split_routes(vs):
        for j, d in enumerate(vs["spec"]["http"][i]["route"]):
            at, subset = f"/spec/http/{i}/route/{j}", d["destination"]["subset"]
            operations.append({"op": "test", "path": f"{at}/destination/subset", "value": subset})
            if "weight" in d:
                operations.append({"op": "test", "path": f"{at}/weight", "value": d["weight"]})
            operations.append({"op": "replace" if "weight" in d else "add", "path": f"{at}/weight",
                               "value": percent if subset == "v2" else 100 - percent})
    return operations


def virtual_service_in(docs: list[Any], path: Path) -> Any:
    for doc in docs:
        if doc and doc.get("kind") == "VirtualService":
            return doc
    raise CanaryError(f"{path} holds no VirtualService")


def configmap_in(docs: list[Any], path: Path) -> Any:
    for doc in docs:
        if doc and doc.get("kind") == "ConfigMap" and doc.get("metadata", {}).get("name") == CONFIGMAP:
            return doc
    raise CanaryError(f"{path} holds no ConfigMap {CONFIGMAP}")


def file_weights(part: str, istio_dir: Path) -> tuple[int, int]:
    path = file_of(part, istio_dir)
    return weights_of(virtual_service_in(list(round_trip_yaml().load_all(path.read_text())), path))


def file_configmap(istio_dir: Path) -> dict[str, str]:
    path = weights_file(istio_dir)
    return {str(k): str(v) for k, v in (configmap_in(list(round_trip_yaml().load_all(path.read_text())), path)
                                        .get("data") or {}).items()}


def set_weights(part: str, percent: int, istio_dir: Path) -> Path:
    """Rewrites the default route of the part to v1 100-P / v2 P; returns the file."""
    check_percent(percent)
    path = file_of(part, istio_dir)
    rewrite(path, lambda docs: weigh(virtual_service_in(docs, path), percent))
    return path


def set_configmap_weight(part: str, percent: int, istio_dir: Path) -> Path:
    check_percent(percent)
    check_part(part)
    path = weights_file(istio_dir)

    def change(docs: list[Any]) -> None:
        data = configmap_in(docs, path).setdefault("data", {})
        data[part] = DoubleQuotedScalarString(str(percent))  # a ConfigMap's values are strings

    rewrite(path, change)
    return path


def check_percent(percent: int) -> None:
    if not 0 <= percent <= 100:
        raise CanaryError(f"percent must be within 0..100, not {percent}")


def check_cluster_only(apply: bool, cluster_only: bool) -> None:
    if cluster_only and not apply:
        raise CanaryError("--cluster-only changes the cluster alone: it needs --apply")


def shift(part: str, percent: int, istio_dir: Path, apply: bool, context: str | None,
          say: Callable[[str], Any] = typer.echo, *, cluster_only: bool = False) -> None:
    """Gives the part's v2 PERCENT of the calls no header pins and of the new sagas: in the files, and with `apply` in
    the cluster (the cluster first, so that a refusal there leaves the files as they were); with `cluster_only` in the
    cluster only. With `apply`, a weight above 0 is refused while <part>-v2 has no ready pod: its share of the calls
    would fail, and the orchestrators would pin sagas to a version that cannot answer."""
    check_percent(percent)
    check_part(part)
    check_cluster_only(apply, cluster_only)
    if not cluster_only:  # both files are there before anything changes
        file_of(part, istio_dir)
        weights_file(istio_dir)
    if apply:
        if percent > 0 and ready_replicas(part, context) == 0:
            raise CanaryError(f"{part}-v2 has no ready pods (Deployment {part}-v2 in namespace {NAMESPACE}): "
                              f"nothing changed; deploy it and wait until it is ready before sending it {percent}%")
        patch_json("virtualservice", part, weight_operations(virtual_service(part, context), percent), context)
        try:
            patch_configmap_weight(part, percent, context)
        except CanaryError as e:
            raise CanaryError(f"VirtualService {part} now sends v2 {percent}%, but the orchestrators' ConfigMap "
                              f"{CONFIGMAP} was not patched (run the command again): {e}") from e
        say(f"{part}: v1 {100 - percent} / v2 {percent} in the cluster "
            f"(VirtualService {part}, ConfigMap {CONFIGMAP} key {part})")
    if not cluster_only:
        paths = set_weights(part, percent, istio_dir), set_configmap_weight(part, percent, istio_dir)
        say(f"{part}: v1 {100 - percent} / v2 {percent} ({paths[0]}, {paths[1]})")
