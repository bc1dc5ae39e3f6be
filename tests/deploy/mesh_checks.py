"""Semantic checks of istio/ against the rendered manifests, each returning a list of problems (empty: fine)."""

import importlib
import re

from google.protobuf import descriptor_pool

from sagashop.kit.settings import SAGA_PARTS, SERVICES

from .manifests import (
    NAMESPACE,
    Obj,
    backends,
    container_ports,
    named,
    of_kind,
    part_of,
    pod_labels,
    ref,
    selected_workloads,
    selects,
    short_host,
    workloads,
)
from .network_checks import admits

ROUTE_HEADER = "x-sagashop-route"
MIN_TIMEOUT_SECONDS = 60  # above every deadline of the app: 2 s a call, 20 s a saga step, 65 s a checkout wait
EXTERNAL_PRINCIPALS = {"cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"}
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def http_routes(istio: list[Obj]) -> list[tuple[Obj, Obj]]:
    return [(vs, route) for vs in of_kind(istio, "VirtualService") for route in vs["spec"].get("http", [])]


def where(obj: Obj, route: Obj | None = None) -> str:
    name = f"{obj.get('_file', '')} {ref(obj)}".strip()
    return f"{name} route {route.get('name', '?')}" if route is not None else name


def subset_problems(istio: list[Obj]) -> list[str]:
    """Every destination's subset is declared by the DestinationRule of its host."""
    subsets = {short_host(dr["spec"]["host"]): {s["name"] for s in dr["spec"].get("subsets", [])}
               for dr in of_kind(istio, "DestinationRule")}
    problems = []
    for vs, route in http_routes(istio):
        for destination in (d["destination"] for d in route.get("route", [])):
            host, subset = short_host(destination["host"]), destination.get("subset")
            if subset is not None and subset not in subsets.get(host, set()):
                problems.append(f"{where(vs, route)}: subset {subset!r} of {host} is in no DestinationRule")
    return problems


def selection_problems(istio: list[Obj], objs: list[Obj], versions: set[str]) -> list[str]:
    """Each DestinationRule names a Service, and each subset (of these versions) selects pods of a workload."""
    problems = []
    for dr in of_kind(istio, "DestinationRule"):
        service = named(objs, "Service", short_host(dr["spec"]["host"]))
        if service is None:
            problems.append(f"{where(dr)}: host {dr['spec']['host']} is no Service")
            continue
        for subset in dr["spec"].get("subsets", []):
            labels = {**service["spec"].get("selector", {}), **subset.get("labels", {})}
            if subset.get("labels", {}).get("version", subset["name"]) in versions and not selected_workloads(
                    objs, labels):
                problems.append(f"{where(dr)}: subset {subset['name']} ({labels}) selects no pods of any workload")
    return problems


def seconds(duration: str) -> float:
    match = DURATION.match(duration)
    return float(match.group(1)) * SECONDS[match.group(2)] if match else -1.0


def route_problems(istio: list[Obj]) -> list[str]:
    """Weights add up to 100, the mesh never retries, and the timeout outlasts the app's deadlines."""
    problems = []
    for vs, route in ((vs, r) for vs, r in http_routes(istio) if "directResponse" not in r):  # answered at once
        weights = [d.get("weight", 0) for d in route.get("route", [])]
        if not all(isinstance(w, int) for w in weights):
            problems.append(f"{where(vs, route)}: weights {weights} must be integers")
        elif len(weights) > 1 and sum(weights) != 100:
            problems.append(f"{where(vs, route)}: weights {weights} do not add up to 100")
        if route.get("retries", {}).get("attempts") != 0:
            problems.append(f"{where(vs, route)}: retries must be {{attempts: 0}}: the app owns retries")
        if seconds(str(route.get("timeout", ""))) < MIN_TIMEOUT_SECONDS:
            problems.append(f"{where(vs, route)}: timeout {route.get('timeout')} is not >= {MIN_TIMEOUT_SECONDS}s")
    return problems


def header_match(route: Obj) -> str | None:
    matches = route.get("match") or [{}]
    return matches[0].get("headers", {}).get(ROUTE_HEADER, {}).get("exact")


def canary_layout_problems(vs: Obj) -> list[str]:
    """Route 1 pins `x-sagashop-route: v2` to v2, route 2 pins v1, the last one (no match) splits v1 / v2."""
    routes = vs["spec"].get("http", [])
    pinned = [(header_match(r), [d["destination"].get("subset") for d in r.get("route", [])]) for r in routes[:2]]
    problems = []
    if pinned != [("v2", ["v2"]), ("v1", ["v1"])]:
        problems.append(f"{where(vs)}: the first two routes must pin {ROUTE_HEADER} v2 then v1, not {pinned}")
    last = routes[-1] if routes else {}
    if "match" in last or sorted(d["destination"].get("subset") for d in last.get("route", [])) != ["v1", "v2"]:
        problems.append(f"{where(vs)}: the last route must match everything and split between subsets v1 and v2")
    return problems


def account(name: str) -> str:
    """The mTLS identity of a ServiceAccount of the namespace."""
    return f"cluster.local/ns/{NAMESPACE}/sa/{name}"


def allows(istio: list[Obj], labels: dict[str, str], principal: str, port: int) -> bool:
    """Whether the ALLOW policies of pods with these labels let the principal open a connection to this container
    port (a rule with paths, methods or conditions is not counted: it allows some calls, not any)."""
    policies = [p for p in of_kind(istio, "AuthorizationPolicy") if p["spec"].get("action", "ALLOW") == "ALLOW"
                and p["metadata"].get("namespace", NAMESPACE) == NAMESPACE and applies(p, labels)]
    if not policies:
        return True  # no ALLOW policy applies: Istio lets everything in
    return any(rule_allows(rule, principal, port) for p in policies for rule in p["spec"].get("rules", []))


def applies(policy: Obj, labels: dict[str, str]) -> bool:
    selector = policy["spec"].get("selector", {}).get("matchLabels")
    return selector is None or selects(selector, labels)


def rule_allows(rule: Obj, principal: str, port: int) -> bool:
    sources = [s.get("source", {}) for s in rule.get("from", [])]
    operations = [o.get("operation", {}) for o in rule.get("to", [])]
    source_ok = not sources or any(set(s) == {"principals"} and principal in s["principals"] for s in sources)
    operation_ok = not operations or any(set(o) <= {"ports"} and str(port) in o.get("ports", [str(port)])
                                         for o in operations)
    return source_ok and operation_ok and "when" not in rule


def kept_from(istio: list[Obj], objs: list[Obj], client: Obj, service: str, port: Obj) -> list[str]:
    """The pods behind a Service port that the network policies or the mesh keep the client's pods from, each as
    `<workload> on port <container port>`."""
    labels = pod_labels(client)
    principal = account(client["spec"]["template"]["spec"].get("serviceAccountName", "default"))
    return [f"{ref(w)} on port {target}" for w, target in backends(objs, service, port)
            if target is not None and not (admits(objs, pod_labels(w), container_ports(w), labels, NAMESPACE, target)
                                           and allows(istio, pod_labels(w), principal, target))]


def callers(service: str) -> set[str]:
    """The parts that call a service's gRPC port: the gateway every service (its routes, /readyz, fault rules), the
    orchestrator the parts its sagas call."""
    return {"gateway", *(["orchestrator"] if service in SAGA_PARTS else [])}


def caller_problems(istio: list[Obj], objs: list[Obj]) -> list[str]:
    """Nobody but a service's callers gets in: its AuthorizationPolicies name no other ServiceAccount, and the
    network policies admit no other part's pods to its gRPC port."""
    problems = []
    for service in SERVICES:
        callee = named(objs, "Deployment", f"{service}-v1")
        if callee is None:
            continue  # part_problems tells
        labels, ports, allowed = pod_labels(callee), container_ports(callee), callers(service)
        for policy in (p for p in of_kind(istio, "AuthorizationPolicy") if applies(p, labels)):
            problems += [f"{where(policy)}: lets {p} call {service}, which only {', '.join(sorted(allowed))} may"
                         for p in principals(policy) if p not in {account(c) for c in allowed}]
        grpc = ports.get("grpc")
        intruders = sorted({str(part_of(w)) for w in workloads(objs) if part_of(w) not in (None, *allowed)
                            and grpc is not None and admits(objs, labels, ports, pod_labels(w), NAMESPACE, grpc)})
        problems += [f"the network policies let {caller} reach {service}'s gRPC port, which only "
                     f"{', '.join(sorted(allowed))} may" for caller in intruders]
    return problems


def principals(policy: Obj) -> list[str]:
    return [p for rule in policy["spec"].get("rules", []) for source in rule.get("from", [])
            for p in source.get("source", {}).get("principals", [])]


def authorization_problems(istio: list[Obj], objs: list[Obj]) -> list[str]:
    """Principals name ServiceAccounts of the namespace (or the ingress gateway); selectors select workloads."""
    accounts = {f"cluster.local/ns/{NAMESPACE}/sa/{sa['metadata']['name']}" for sa in of_kind(objs, "ServiceAccount")}
    problems = []
    for policy in of_kind(istio, "AuthorizationPolicy"):
        unknown = [p for p in principals(policy) if p not in accounts | EXTERNAL_PRINCIPALS]
        problems += [f"{where(policy)}: principal {p} is no ServiceAccount" for p in unknown]
        labels = policy["spec"].get("selector", {}).get("matchLabels")
        if labels is not None and not selected_workloads(objs, labels):
            problems.append(f"{where(policy)}: selector {labels} selects no workload")
    return problems


def grpc_methods() -> set[str]:
    """/package.Service/Method of every method of the shop's protos and of the gRPC health service."""
    for module in (*(f"sagashop.v1.{s}_pb2" for s in SERVICES), "sagashop.v1.faults_pb2", "grpc_health.v1.health_pb2"):
        importlib.import_module(module)  # registers its services in the default pool
    pool = descriptor_pool.Default()
    names = [f"sagashop.v1.{s.capitalize()}Service" for s in SERVICES] + ["sagashop.v1.FaultService",
                                                                           "grpc.health.v1.Health"]
    return {f"/{name}/{m.name}" for name in names for m in pool.FindServiceByName(name).methods}


def method_problems(istio: list[Obj]) -> list[str]:
    """Every path an AuthorizationPolicy names is a real gRPC method (or /Service/* of a real service)."""
    methods = grpc_methods()
    services = {m.rsplit("/", 1)[0] + "/*" for m in methods}
    return [f"{where(policy)}: {path} is no gRPC method" for policy in of_kind(istio, "AuthorizationPolicy")
            for rule in policy["spec"].get("rules", []) for to in rule.get("to", [])
            for path in to.get("operation", {}).get("paths", []) if path not in methods | services]


def namespace_problems(istio: list[Obj], objs: list[Obj]) -> list[str]:
    """Everything lives in the one namespace the principals name."""
    cluster_scoped = {"Namespace"}
    return [f"{where(o)}: namespace {o['metadata'].get('namespace')!r}, not {NAMESPACE!r}" for o in [*istio, *objs]
            if o.get("kind") not in cluster_scoped and o["metadata"].get("namespace") != NAMESPACE]


def mesh_problems(istio: list[Obj], objs: list[Obj], versions: set[str]) -> list[str]:
    return [*subset_problems(istio), *selection_problems(istio, objs, versions), *route_problems(istio),
            *authorization_problems(istio, objs), *namespace_problems(istio, objs), *caller_problems(istio, objs)]
