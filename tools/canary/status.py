"""`sagashop canary status`: the v2 weight of each part where it is kept, side by side, differences flagged.

The files: the default route of istio/<part>.yaml and the part's key of istio/canary-weights.yaml. With a context,
the cluster: the live VirtualService (where the calls no header pins go), the ConfigMap the orchestrators read (the
share of new sagas pinned to v2), and the ready pods of Deployment <part>-v2.
"""

from pathlib import Path

from .files import PARTS, WEIGHTS_FILE, file_configmap, file_weights, weights_of
from .kube import CanaryError, configmap_weights, get

FILE_COLUMNS = ("PART", "VS-FILE", "MAP-FILE")
CLUSTER_COLUMNS = ("VS", "CONFIGMAP", "V2-READY")
WIDTH = 13


def status_lines(istio_dir: Path, context: str | None = None) -> list[str]:
    maps = file_configmap(istio_dir) if (istio_dir / WEIGHTS_FILE).is_file() else {}
    rows: dict[str, list[str | None]] = {part: [file_weight(part, istio_dir), maps.get(part)] for part in PARTS}
    columns: tuple[str, ...] = FILE_COLUMNS
    if context is not None:
        columns += CLUSTER_COLUMNS
        for part, cells in cluster_cells(context).items():
            rows[part] += cells
    header = "".join(f"{c:<{WIDTH}}" for c in columns).rstrip()
    lines = ["v2 percent of each part, and the ready pods of its v2", header]
    for part, cells in rows.items():
        weights = {cell for cell in cells[:4] if cell is not None}
        notes = []
        if len(weights) > 1:
            notes.append("(differs)")
        if context is not None and cells[4] == "0" and any(w not in (None, "0") for w in cells[2:4]):
            notes.append("(v2 not ready)")  # the cluster sends v2 traffic it cannot answer
        line = "".join(f"{cell or '-':<{WIDTH}}" for cell in [part, *cells]) + "  ".join(notes)
        lines.append(line.rstrip())
    return lines


def file_weight(part: str, istio_dir: Path) -> str | None:
    return str(file_weights(part, istio_dir)[1]) if (istio_dir / f"{part}.yaml").is_file() else None


def cluster_cells(context: str) -> dict[str, list[str | None]]:
    """Per part: the v2 weight of its live VirtualService, its key of the live ConfigMap, its v2's ready pods."""
    services = {vs["metadata"]["name"]: vs for vs in (get("virtualservice", None, context) or {}).get("items", [])}
    ready = {d["metadata"]["name"]: d.get("status", {}).get("readyReplicas", 0)
             for d in (get("deployment", None, context) or {}).get("items", [])}
    configmap = configmap_weights(context) or {}
    return {part: [live_weight(services.get(part)), configmap.get(part), str(ready.get(f"{part}-v2", 0))]
            for part in PARTS}


def live_weight(vs: dict[str, object] | None) -> str | None:
    if vs is None:
        return None
    try:
        return str(weights_of(vs)[1])
    except CanaryError:
        return "?"  # a VirtualService no longer laid out for canaries: shown, and flagged as a difference
