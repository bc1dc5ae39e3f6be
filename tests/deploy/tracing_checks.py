"""The trace pipeline of an overlay that runs one (components/observability), each check returning problems:

    part --OTEL_EXPORTER_OTLP_ENDPOINT--> collector --its otlp exporter--> Jaeger

each hop names a Service port of the tree that speaks the hop's protocol, the pods behind it listen for OTLP there,
and the mesh lets the sender's ServiceAccount in; the collector's own configuration agrees with its Deployment (every
pipeline's pieces defined, listening where the sidecar delivers, probed through health_check); Jaeger's in-memory
storage is bounded. An endpoint outside the namespace (a real backend) is not in the tree to check.
"""

import re
from typing import Any
from urllib.parse import SplitResult, urlsplit

import yaml

from sagashop.kit.telemetry import OTLP_ENDPOINTS

from .env_checks import environment
from .manifests import (
    Obj,
    backends,
    container_ports,
    local_service,
    named,
    part_of,
    pod_labels,
    protocol,
    ref,
    service_port,
    workloads,
)
from .mesh_checks import account, allows

COLLECTOR_IMAGE = re.compile(r"(^|/)opentelemetry-collector(-contrib|-k8s)?(:|@|$)")
JAEGER_IMAGE = re.compile(r"(^|/)jaegertracing/all-in-one(:|@|$)")
EVERY_ADDRESS = {"0.0.0.0", "[::]", "::"}
# the protocol of each kind of OTLP exporter, and the Istio protocols of a Service port that carry it
EXPORTERS = {"otlp": "grpc", "otlphttp": "http"}
CARRIERS = {"grpc": {"grpc"}, "http": {"http", "http2", "https"}}


def main_container(workload: Obj) -> Obj:
    return workload["spec"]["template"]["spec"]["containers"][0]


def running(objs: list[Obj], image: re.Pattern[str]) -> list[Obj]:
    return [w for w in workloads(objs) if image.search(main_container(w)["image"])]


def kind_of(component: str) -> str:
    """`otlp/jaeger` is an exporter of kind otlp."""
    return component.split("/")[0]


def host_port(endpoint: Any) -> tuple[str, str]:
    host, _, port = str(endpoint or "").rpartition(":")
    return host, port


def url_of(endpoint: Any, kind: str) -> SplitResult:
    """An exporter's endpoint as a URL: `jaeger:4317` (gRPC) or `http://jaeger:4318`."""
    text = str(endpoint or "")
    return urlsplit(text if "://" in text else f"{'http' if kind == 'otlphttp' else 'grpc'}://{text}")


def config_of(collector: Obj, objs: list[Obj]) -> tuple[dict[str, Any], str | None]:
    """The collector's configuration: the file its --config names, read from the ConfigMap mounted there."""
    container, spec = main_container(collector), collector["spec"]["template"]["spec"]
    args = container.get("args", [])
    path = next((a.removeprefix("--config=") for a in args if a.startswith("--config=")), None)
    if path is None:
        return {}, "has no --config=<file> argument"
    mount = next((m for m in container.get("volumeMounts", []) if path.startswith(m["mountPath"].rstrip("/") + "/")),
                 None)
    if mount is None:
        return {}, f"--config={path} is on no volume of the container"
    volume = next((v for v in spec.get("volumes", []) if v["name"] == mount["name"]), {})
    config_map = named(objs, "ConfigMap", volume.get("configMap", {}).get("name", "")) or {}
    key = path.removeprefix(mount["mountPath"].rstrip("/") + "/")
    if key not in config_map.get("data", {}):
        return {}, f"--config={path} is no key of a ConfigMap mounted there"
    return yaml.safe_load(config_map["data"][key]) or {}, None


def listening(workload: Obj, objs: list[Obj]) -> dict[str, set[int]] | None:
    """The container ports on which a collector or Jaeger takes OTLP, by protocol; None for another workload."""
    if running([workload], COLLECTOR_IMAGE):
        config, unread = config_of(workload, objs)
        if unread:
            return None  # reported by collector_problems
        found: dict[str, set[int]] = {"grpc": set(), "http": set()}
        for _, wire, endpoint in otlp_receivers(config):
            if (port := host_port(endpoint)[1]).isdigit():
                found.setdefault(wire, set()).add(int(port))
        return found
    if running([workload], JAEGER_IMAGE):
        env = environment(main_container(workload), objs)
        ports = {name: host_port(env.get(f"COLLECTOR_OTLP_{name.upper()}_HOST_PORT", f":{default}"))[1]
                 for name, default in (("grpc", 4317), ("http", 4318))}
        return {name: {int(port)} if port.isdigit() else set() for name, port in ports.items()}
    return None


def reach_problems(istio: list[Obj], objs: list[Obj], sender: Obj, target: SplitResult, wire: str,
                   what: str) -> list[str]:
    """The sender reaches OTLP over `wire` (grpc | http) at the target URL, a Service port of the namespace."""
    service = local_service(target.hostname or "")
    if service is None:
        return []
    port = service_port(objs, service, target.port or 80)
    if port is None:
        return [f"{what}: {target.hostname}:{target.port} is no Service port"]
    if protocol(port) not in CARRIERS[wire]:
        return [f"{what}: sends OTLP over {wire} to {service} port {port['name']}, which speaks {protocol(port)}"]
    problems, sender_account = [], sender["spec"]["template"]["spec"].get("serviceAccountName", "default")
    for backend, container_port in backends(objs, service, port):
        otlp = listening(backend, objs)
        if container_port is not None and otlp is not None and container_port not in otlp.get(wire, set()):
            problems.append(f"{what}: {ref(backend)} takes no OTLP over {wire} on port {container_port}")
        elif container_port is not None and not allows(istio, pod_labels(backend), account(sender_account),
                                                       container_port):
            problems.append(f"{what}: the mesh does not let {sender_account} reach {ref(backend)} on port "
                            f"{container_port} (an AuthorizationPolicy of its pods must allow it)")
    return problems


def export_problems(istio: list[Obj], objs: list[Obj]) -> list[str]:
    """Every part's spans reach the OTLP/HTTP endpoint it is given (OTEL_EXPORTER_OTLP_ENDPOINT or _TRACES_)."""
    problems, collector = [], running(objs, COLLECTOR_IMAGE)
    for workload in (w for w in workloads(objs) if part_of(w)):
        env = environment(main_container(workload), objs)
        if collector and not any(env.get(n) for n in OTLP_ENDPOINTS):
            problems.append(f"{ref(workload)}: exports no spans (no {OTLP_ENDPOINTS[0]}) though a collector runs")
        for name in (n for n in OTLP_ENDPOINTS if env.get(n)):
            url, what = urlsplit(str(env[name])), f"{ref(workload)}: {name}"
            if url.scheme not in ("http", "https") or not url.hostname:
                problems.append(f"{what}={env[name]!r} is no http(s):// URL: the parts export OTLP over HTTP")
            else:
                problems += reach_problems(istio, objs, workload, url, "http", what)
    return problems


def pipeline_problems(config: dict[str, Any]) -> list[str]:
    """A traces pipeline, and every piece the service section names is defined."""
    service = config.get("service") or {}
    problems = [f"extension {e} is not defined" for e in service.get("extensions", [])
                if e not in (config.get("extensions") or {})]
    pipelines = service.get("pipelines") or {}
    if not any(kind_of(name) == "traces" for name in pipelines):
        problems.append("has no traces pipeline")
    for name, pipeline in pipelines.items():
        problems += [f"pipeline {name}: {section[:-1]} {piece} is not defined"
                     for section in ("receivers", "processors", "exporters") for piece in pipeline.get(section, [])
                     if piece not in (config.get(section) or {})]
    return problems


def otlp_receivers(config: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(receiver, protocol, endpoint) for each protocol (grpc, http) of each OTLP receiver."""
    return [(component, wire, (settings or {}).get("endpoint"))
            for component, receiver in (config.get("receivers") or {}).items() if kind_of(component) == "otlp"
            for wire, settings in ((receiver or {}).get("protocols") or {}).items()]


def listen_problems(collector: Obj, config: dict[str, Any]) -> list[str]:
    """The OTLP receivers and health_check listen on every address of the pod (the sidecar delivers to the pod's
    address, not to localhost), on container ports, and the probes ask health_check."""
    ports, problems = container_ports(collector), []
    health = [(f"extension {c}", (e or {}).get("endpoint")) for c, e in (config.get("extensions") or {}).items()
              if kind_of(c) == "health_check"]
    receivers = [(f"receiver {component} {wire}", endpoint) for component, wire, endpoint in otlp_receivers(config)]
    for what, endpoint in receivers + health:
        host, port = host_port(endpoint)
        if host not in EVERY_ADDRESS:
            problems.append(f"{what} listens on {endpoint or 'localhost (its default)'}, not 0.0.0.0: out of reach")
        elif not port.isdigit() or int(port) not in ports:
            problems.append(f"{what} listens on port {port}, which is no container port")
    health_ports = {int(port) for _, endpoint in health if (port := host_port(endpoint)[1]).isdigit()}
    for kind in ("readinessProbe", "livenessProbe"):
        probe = main_container(collector).get(kind, {}).get("httpGet", {})
        if ports.get(probe.get("port")) not in health_ports:
            problems.append(f"{kind} must ask the health_check extension (port {sorted(health_ports)})")
    return problems


def collector_problems(istio: list[Obj], objs: list[Obj]) -> list[str]:
    problems = []
    for collector in running(objs, COLLECTOR_IMAGE):
        config, unread = config_of(collector, objs)
        found = [unread] if unread else [*pipeline_problems(config), *listen_problems(collector, config)]
        for component, exporter in (config.get("exporters") or {}).items():
            if kind_of(component) in EXPORTERS:
                target = url_of((exporter or {}).get("endpoint"), kind_of(component))
                found += reach_problems(istio, objs, collector, target, EXPORTERS[kind_of(component)],
                                        f"exporter {component}")
        problems += [f"{ref(collector)}: {p}" for p in found]
    return problems


def jaeger_problems(objs: list[Obj]) -> list[str]:
    """Jaeger all-in-one keeps its traces in memory: bounded by MEMORY_MAX_TRACES, and it takes OTLP."""
    problems = []
    for jaeger in running(objs, JAEGER_IMAGE):
        env = environment(main_container(jaeger), objs)
        limit = str(env.get("MEMORY_MAX_TRACES", ""))
        if env.get("SPAN_STORAGE_TYPE", "memory") == "memory" and not (limit.isdigit() and int(limit) > 0):
            problems.append(f"{ref(jaeger)}: in-memory storage needs MEMORY_MAX_TRACES, else it grows until killed")
        if str(env.get("COLLECTOR_OTLP_ENABLED", "true")).lower() != "true":
            problems.append(f"{ref(jaeger)}: COLLECTOR_OTLP_ENABLED must stay true: the collector sends OTLP")
    return problems


def tracing_problems(istio: list[Obj], objs: list[Obj]) -> list[str]:
    return [*export_problems(istio, objs), *collector_problems(istio, objs), *jaeger_problems(objs)]
