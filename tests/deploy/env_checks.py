"""The environment of every part against `Settings`: each problem is a string (no problems: an empty list).

What a part must be given in a cluster is derived from `Settings.model_fields`: every field whose default only makes
sense on one machine (None, 127.0.0.1, a relative path), plus the version and the faults switch, whose defaults
would be wrong in a pod, narrowed to the parts that read them (READ_ONLY_BY). A secret goes to those parts only.
"""

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import opentelemetry.environment_variables
import opentelemetry.sdk.environment_variables
from pydantic import TypeAdapter, ValidationError

from sagashop.kit.settings import PARTS, SERVICES, Settings

from .manifests import Obj, container_ports, named, of_kind, part_of, ref, workloads

PREFIX = "SAGASHOP_"
OTEL_PREFIX = "OTEL_"
# every variable the OpenTelemetry API and SDK read (the parts read no other OTEL_* variable)
OTEL_VARIABLES = {value for module in (opentelemetry.environment_variables, opentelemetry.sdk.environment_variables)
                  for name, value in vars(module).items() if name.startswith(OTEL_PREFIX)}
CONFIG_MAP = "sagashop-config"
VERSION_FIELD = "metadata.labels['version']"
# unset on purpose: random fault draws; the mesh finds v2; spans go to an OTLP endpoint, not to a file; the ports of
# the NATS server and the SMTP sink `sagashop up` runs (a pod is given SAGASHOP_NATS_URL and SAGASHOP_SMTP_URL)
OPTIONAL = {"faults_seed", "canary_addresses", "trace_file", "nats_port", "smtp_port"}
WRONG_IN_A_POD = {"version", "faults_enabled"}
# the fields some parts only read (any other: every part)
READ_ONLY_BY: dict[str, set[str]] = {
    "jwt_secret": {"gateway"}, "admin_password": {"user"}, "metrics_port": set(SERVICES),
    "database_url": set(SERVICES), "redis_url": {"gateway", "orchestrator"}, "forwarded_allow_ips": {"gateway"},
    "catalog_cache_seconds": {"gateway"}, "notification_host": {"gateway"}, "reporting_host": {"gateway"},
    "smtp_url": {"notification"}, "mail_from": {"notification"},
    "event_ack_wait_seconds": {"notification", "reporting"}}
PER_POD = {"version", "bind", "metrics_port", "database_url"}  # set in each <part>.yaml, not in the shared ConfigMap
SECRET = {"jwt_secret", "admin_password", "internal_secret", "smtp_url"}  # from the Secret, in each <part>.yaml


def local_only(default: Any) -> bool:
    return default is None or "127.0.0.1" in str(default) or (isinstance(default, Path) and not default.is_absolute())


def required(part: str) -> set[str]:
    fields = {name for name, field in Settings.model_fields.items() if local_only(field.default)}
    return {f"{PREFIX}{name.upper()}" for name in (fields | WRONG_IN_A_POD) - OPTIONAL
            if part in readers(f"{PREFIX}{name.upper()}")}


def environment(container: Obj, objs: list[Obj]) -> dict[str, Any]:
    """name -> a literal value, or the valueFrom dict of a reference; envFrom ConfigMaps are read, Secrets listed."""
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config = named(objs, "ConfigMap", source["configMapRef"]["name"]) or {}
            env.update(config.get("data", {}))
        elif "secretRef" in source:
            secret = named(objs, "Secret", source["secretRef"]["name"]) or {}
            env.update({key: {"secretRef": source["secretRef"]} for key in secret.get("data", {})})
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", var.get("valueFrom"))
    return env


def type_error(annotation: Any, value: str) -> str | None:
    """As pydantic-settings reads a variable: the text itself, or JSON for a dict or a list."""
    adapter = TypeAdapter(annotation)
    try:
        adapter.validate_python(value)
    except ValidationError:
        try:
            adapter.validate_json(value)
        except ValidationError as e:
            return str(e.errors()[0]["msg"])
    return None


def value_problems(env: dict[str, Any]) -> list[str]:
    """Only variables Settings knows, each of its field's type, and OpenTelemetry's own."""
    problems = []
    for name, value in env.items():
        if name.startswith(OTEL_PREFIX) and name not in OTEL_VARIABLES:
            problems.append(f"{name} is no OpenTelemetry SDK variable")
        if not name.startswith(PREFIX):
            continue
        field = Settings.model_fields.get(name[len(PREFIX):].lower())
        if field is None:
            problems.append(f"{name} is no Settings field")
        elif isinstance(value, str) and (error := type_error(field.annotation, value)):
            problems.append(f"{name}={value!r}: {error}")
    return problems


def service_port(objs: list[Obj], host: str) -> set[int]:
    service = named(objs, "Service", host)
    return {p["port"] for p in service["spec"]["ports"]} if service else set()


def address_problems(env: dict[str, Any], objs: list[Obj]) -> list[str]:
    """Hosts, ports and URLs name Services of the rendered tree, on ports they serve."""
    problems = []
    for service in SERVICES:
        host, port = env.get(f"{PREFIX}{service.upper()}_HOST"), env.get(f"{PREFIX}{service.upper()}_PORT")
        if isinstance(host, str) and not (str(port).isdigit() and int(port) in service_port(objs, host)):
            problems.append(f"{service} at {host}:{port} is no Service port")
    for name in ("DATABASE_URL", "REDIS_URL", "NATS_URL"):
        url = urlsplit(env.get(f"{PREFIX}{name}") or "")
        if url.hostname and (url.port or 0) not in service_port(objs, url.hostname):
            problems.append(f"{PREFIX}{name}: {url.hostname}:{url.port} is no Service port")
        if url.password:
            problems.append(f"{PREFIX}{name} holds a password in plain text")
    return problems


def pod_problems(workload: Obj, container: Obj, env: dict[str, Any]) -> list[str]:
    """What only the pod knows: its version label, its bind address and metrics port, the database password."""
    problems = []
    version = env.get(f"{PREFIX}VERSION")
    if not isinstance(version, dict) or version.get("fieldRef", {}).get("fieldPath") != VERSION_FIELD:
        problems.append(f"{PREFIX}VERSION must come from fieldRef {VERSION_FIELD}")
    if "version" not in workload["spec"]["template"]["metadata"].get("labels", {}):
        problems.append("the pod has no `version` label")
    if env.get(f"{PREFIX}BIND") != "0.0.0.0":
        problems.append(f"{PREFIX}BIND must be 0.0.0.0 in a pod")
    metrics = env.get(f"{PREFIX}METRICS_PORT")
    if metrics is not None and container_ports(workload).get("metrics") != int(metrics):
        problems.append(f"{PREFIX}METRICS_PORT={metrics} is not the container port named metrics")
    if f"{PREFIX}DATABASE_URL" in env and "PGPASSWORD" not in env and part_of(workload) in SERVICES:
        problems.append("PGPASSWORD (the database password) is not set")
    return problems


def readers(name: str) -> set[str]:
    """The parts that read a SAGASHOP_* variable."""
    return READ_ONLY_BY.get(name[len(PREFIX):].lower(), set(PARTS))


def exposure_problems(part: str, env: dict[str, Any]) -> list[str]:
    """A variable taken from a Secret is given only to the parts that read it: any other pod would hold the secret
    for nothing (readable by whoever may exec into it or read its spec)."""
    return [f"{name} comes from a Secret, and {part} never reads it" for name, value in sorted(env.items())
            if name.startswith(PREFIX) and isinstance(value, dict) and "secretKeyRef" in value
            and part not in readers(name)]


def env_problems(objs: list[Obj]) -> list[str]:
    """Every part gets every variable it must have in a cluster, each well-typed and pointing at real Services, and
    no secret it does not read."""
    problems = []
    for workload in workloads(objs):
        part = part_of(workload)
        if part is None:
            continue
        container = workload["spec"]["template"]["spec"]["containers"][0]
        env = environment(container, objs)
        found = [f"missing {name}" for name in sorted(required(part) - set(env))]
        found += value_problems(env) + address_problems(env, objs) + pod_problems(workload, container, env)
        found += exposure_problems(part, env)
        problems += [f"{ref(workload)}: {p}" for p in found]
    return problems


def config_problems(objs: list[Obj]) -> list[str]:
    """The shared ConfigMap names Settings fields only (a typo would silently leave a default)."""
    return [f"{ref(c)}: {p}" for c in of_kind(objs, "ConfigMap") for p in value_problems(c.get("data", {}))]


def coverage_problems(objs: list[Obj]) -> list[str]:
    """The shared ConfigMap lists every other Settings field, so the cluster's whole configuration is in one place."""
    config = next((c for c in of_kind(objs, "ConfigMap") if c["metadata"]["name"].startswith(CONFIG_MAP)), {})
    listed = {key[len(PREFIX):].lower() for key in config.get("data", {})}
    missing = set(Settings.model_fields) - listed - PER_POD - SECRET - OPTIONAL
    return [f"{CONFIG_MAP}: no {PREFIX}{name.upper()} (add it to deploy/k8s/base/config.env)"
            for name in sorted(missing)]
