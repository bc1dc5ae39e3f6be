"""Schema checks, each returning a list of problems (empty: valid).

Kubernetes objects: kubernetes-validate's bundled strict schemas (unknown fields are errors). Its `validate()` stops at
the first error and its CLI only WARNs (exit 0) for a kind it has no schema for, so we run jsonschema ourselves over
its schema files to list every error, and count a missing schema as a problem unless the kind is an Istio CRD.

Istio objects: cloudcoil's Istio 1.24 models with strict=True (no "90" for 90). They drop unknown fields silently,
so a field the model does not know shows up as a difference between the input and the model's dump.
"""

import json
import re
from functools import cache
from typing import Any

import jsonschema
import referencing
from cloudcoil.resources import get_model
from kubernetes_validate import utils as kv
from pydantic import ValidationError

from .manifests import Obj, ref

KUBERNETES_VERSION = "1.35.0"  # the kind node (deploy/kind/cluster.yaml); Istio 1.30 supports 1.32-1.36
ISTIO_GROUP = re.compile(r"^[a-z.]+\.istio\.io/")


def is_istio(obj: Obj) -> bool:
    return bool(ISTIO_GROUP.match(obj.get("apiVersion", "")))


def _strip(obj: Obj) -> Obj:
    return {key: value for key, value in obj.items() if not key.startswith("_")}


@cache
def _definitions() -> referencing.Resource:
    schema_dir = f"kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict"
    return referencing.Resource.from_contents(kv.schema_contents(f"{schema_dir}/_definitions.json", KUBERNETES_VERSION))


@cache
def _validator(kind: str, api_version: str) -> jsonschema.protocols.Validator | None:
    schema_dir = f"kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)  # apps/v1 -> apps-v1, as the CLI does
    try:
        schema = kv.schema_contents(f"{schema_dir}/{kind.lower()}-{group_version}.json", KUBERNETES_VERSION)
    except FileNotFoundError:
        return None
    registry = _definitions() @ (referencing.Resource.from_contents(schema) @ referencing.Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def kubernetes_problems(objs: list[Obj]) -> list[str]:
    """Every schema error of every non-Istio object, with its path."""
    problems = []
    for obj in objs:
        if is_istio(obj):
            continue
        validator = _validator(str(obj.get("kind")), str(obj.get("apiVersion")))
        if validator is None:
            problems.append(f"{ref(obj)}: no Kubernetes {KUBERNETES_VERSION} schema for {obj.get('apiVersion')}")
            continue
        for error in sorted(validator.iter_errors(_strip(obj)), key=lambda e: list(map(str, e.path))):
            path = ".".join(str(part) for part in error.absolute_path)
            problems.append(f"{ref(obj)}: {path}: {error.message}")
    return problems


def unknown_fields(given: Any, known: Any, path: str = "") -> list[str]:
    """Paths present in `given` but missing (or changed) in `known`, the model's dump of it."""
    if isinstance(given, dict) and isinstance(known, dict):
        return [p for key, value in given.items()
                for p in (unknown_fields(value, known[key], f"{path}.{key}") if key in known else [f"{path}.{key}"])]
    if isinstance(given, list) and isinstance(known, list) and len(given) == len(known):
        pairs = enumerate(zip(given, known, strict=True))
        return [p for i, (a, b) in pairs for p in unknown_fields(a, b, f"{path}[{i}]")]
    return [] if given == known else [f"{path} (read as {json.dumps(known)})"]


def istio_problems(objs: list[Obj]) -> list[str]:
    """Every Istio object loads into its model in strict mode and dumps back to exactly what was written."""
    problems = []
    for obj in filter(is_istio, objs):
        where = f"{obj.get('_file', '')} {ref(obj)}".strip()
        try:
            model = get_model(str(obj.get("kind")), api_version=str(obj.get("apiVersion")))
        except KeyError:
            problems.append(f"{where}: no Istio model for {obj.get('apiVersion')} {obj.get('kind')}")
            continue
        given = _strip(obj)
        try:
            loaded = model.model_validate(given, strict=True)
        except ValidationError as e:
            problems += [f"{where}: {'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
            continue
        dumped = loaded.model_dump(by_alias=True, exclude_unset=True, mode="json")
        problems += [f"{where}: unknown field {path}" for path in unknown_fields(given, dumped)]
    return problems
