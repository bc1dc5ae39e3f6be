"""NATS with JetStream (base/nats.yaml, a cluster in production), each check returning problems:

    part --SAGASHOP_NATS_URL--> Service port --> a NATS server's client port        nats <--routes--> nats

the parts' URL reaches the servers' client port (not the routes' port, which a Service would serve just as well),
past the network policies and the mesh; JetStream keeps its streams on a PersistentVolumeClaim; a PodDisruptionBudget
covers the servers, and keeps a cluster's quorum; a cluster's routes name each of its servers through a headless
Service, and the servers may reach each other there; the probes ask the monitoring port's /healthz.
"""

import re
from urllib.parse import urlsplit

from .env_checks import environment
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
    service_port,
    workloads,
)
from .mesh_checks import account, allows, kept_from
from .network_checks import admits, matches
from .tracing_checks import main_container, running
from .workload_checks import PROBES

NATS_IMAGE = re.compile(r"(^|/)nats(:|@|$)")
URL = "SAGASHOP_NATS_URL"


def flags(server: Obj) -> dict[str, str]:
    """The server's `--flag=value` arguments (a bare `--flag`: "")."""
    return dict(arg.removeprefix("--").partition("=")[::2] for arg in main_container(server).get("args", []))


def client_port(server: Obj) -> int:
    return int(flags(server).get("port", 4222))


def url_problems(mesh: list[Obj], objs: list[Obj], servers: list[Obj]) -> list[str]:
    """Each part's NATS URL leads to the client port of NATS servers, and the network and the mesh let it in."""
    problems = []
    for workload in (w for w in workloads(objs) if part_of(w)):
        url = urlsplit(str(environment(main_container(workload), objs).get(URL) or ""))
        port = service_port(objs, url.hostname or "", url.port or 0)
        if port is None:
            continue  # no URL, or no Service port: env_checks tells
        reached = backends(objs, str(url.hostname), port)
        if not reached or any(w not in servers or target != client_port(w) for w, target in reached):
            problems.append(f"{ref(workload)}: {URL} {url.hostname}:{url.port} reaches "
                            f"{[(ref(w), target) for w, target in reached]}, not a NATS server's client port")
            continue
        problems += [f"{ref(workload)}: the network policies or the mesh keep it from {blocked}"
                     for blocked in kept_from(mesh, objs, workload, str(url.hostname), port)]
    return problems


def store_problems(server: Obj) -> list[str]:
    """JetStream on, its store on a volume of the StatefulSet's claims (an emptyDir or the root would lose it)."""
    given = flags(server)
    if "jetstream" not in given:
        return [f"{ref(server)}: JetStream is off (no --jetstream)"]
    store, claims = given.get("store_dir", ""), {t["metadata"]["name"] for t in server["spec"].get(
        "volumeClaimTemplates", [])}
    mounts = [m["mountPath"].rstrip("/") for m in main_container(server).get("volumeMounts", [])
              if m["name"] in claims]
    if not any(store == m or store.startswith(f"{m}/") for m in mounts):
        return [f"{ref(server)}: JetStream's store {store or '(none given)'} is on no PersistentVolumeClaim"]
    return []


def cluster_problems(mesh: list[Obj], objs: list[Obj], server: Obj) -> list[str]:
    """A cluster: an odd number of servers, each uniquely named, routed to by name through a headless Service
    that serves the cluster port, and let through by the network policies and the mesh."""
    replicas, given, name = server["spec"].get("replicas", 1), flags(server), server["metadata"]["name"]
    if replicas == 1:
        return [f"{ref(server)}: one server takes no routes"] if "routes" in given else []
    problems = [] if replicas % 2 else [f"{ref(server)}: {replicas} servers: JetStream needs an odd number"]
    headless, cluster = named(objs, "Service", server["spec"]["serviceName"]), container_ports(server).get("cluster")
    if headless is None or headless["spec"].get("clusterIP") != "None" or cluster not in {
            p["port"] for p in headless["spec"]["ports"]}:
        problems.append(f"{ref(server)}: serviceName must be a headless Service serving the cluster port {cluster}")
    if "cluster_name" not in given or not given.get("cluster", "").endswith(f":{cluster}"):
        problems.append(f"{ref(server)}: needs --cluster_name and --cluster listening on the cluster port {cluster}")
    routes = sorted(given.get("routes", "").split(","))
    wanted = sorted(f"nats://{name}-{i}.{server['spec']['serviceName']}:{cluster}" for i in range(replicas))
    if routes != wanted:
        problems.append(f"{ref(server)}: the routes {routes} must name each of its {replicas} servers: {wanted}")
    env = environment(main_container(server), objs)
    if given.get("name") != "$(POD_NAME)" or env.get("POD_NAME") != {"fieldRef": {"fieldPath": "metadata.name"}}:
        problems.append(f"{ref(server)}: each server needs a name of its own (--name=$(POD_NAME) from metadata.name)")
    labels, ports = pod_labels(server), container_ports(server)
    if cluster is None or not (admits(objs, labels, ports, labels, NAMESPACE, cluster)
                               and allows(mesh, labels, account(server["spec"]["template"]["spec"].get(
                                   "serviceAccountName", "default")), cluster)):
        problems.append(f"{ref(server)}: the network policies or the mesh keep its servers from each other's "
                        f"cluster port {cluster}")
    return problems


def disruption_problems(objs: list[Obj], server: Obj) -> list[str]:
    """A PodDisruptionBudget covers the servers; in a cluster, a drain keeps a majority up."""
    replicas = server["spec"].get("replicas", 1)
    budgets = [b for b in of_kind(objs, "PodDisruptionBudget") if matches(b["spec"]["selector"], pod_labels(server))]
    if not budgets:
        return [f"{ref(server)}: no PodDisruptionBudget selects its pods"]
    down = [b["spec"].get("maxUnavailable", replicas - b["spec"].get("minAvailable", 0)) for b in budgets]
    down = [d if isinstance(d, int) else replicas for d in down]  # a percentage: counted as the worst
    if replicas > 1 and max(down) > (replicas - 1) // 2:
        return [f"{ref(server)}: a PodDisruptionBudget lets {max(down)} of {replicas} servers go: JetStream loses "
                "its quorum"]
    return []


def probe_problems(server: Obj) -> list[str]:
    """The probes ask /healthz on the monitoring port the server serves (--http_port)."""
    monitor = flags(server).get("http_port")
    problems = []
    for kind in PROBES:
        probe = main_container(server).get(kind, {}).get("httpGet", {})
        port = container_ports(server).get(probe.get("port", ""))
        if not str(probe.get("path", "")).startswith("/healthz") or monitor is None or port != int(monitor):
            problems.append(f"{ref(server)}: {kind} must ask /healthz on the monitoring port (--http_port)")
    return problems


def nats_problems(mesh: list[Obj], objs: list[Obj]) -> list[str]:
    servers = running(objs, NATS_IMAGE)
    problems = url_problems(mesh, objs, servers)
    for server in servers:
        if server["kind"] != "StatefulSet":
            problems.append(f"{ref(server)}: NATS must be a StatefulSet (a volume of its own per server)")
            continue
        problems += [*store_problems(server), *cluster_problems(mesh, objs, server),
                     *disruption_problems(objs, server), *probe_problems(server)]
    return problems
