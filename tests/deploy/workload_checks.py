"""Checks of the rendered workloads and their Services, each returning a list of problems (empty: fine)."""

from sagashop.kit.settings import PARTS, SERVICES

from .manifests import (
    PROTOCOLS,
    Obj,
    container_ports,
    containers,
    named,
    named_protocol,
    of_kind,
    part_of,
    pod_labels,
    ref,
    selected_workloads,
    workloads,
)

PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def service_problems(objs: list[Obj]) -> list[str]:
    """Each Service selects pods, and each of its targetPorts is a container port of every pod it selects."""
    problems = []
    for service in of_kind(objs, "Service"):
        selected = selected_workloads(objs, service["spec"].get("selector", {}))
        if not selected:
            problems.append(f"{ref(service)}: selector {service['spec'].get('selector')} selects no workload")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            problems += [f"{ref(service)}: targetPort {target} is no container port of {ref(w)}"
                         for w in selected if target not in container_ports(w)]
            problems += [f"{ref(service)}: port {port['name']} {p}" for p in protocol_problems(port)]
    return problems


def protocol_problems(port: Obj) -> list[str]:
    """Istio reads each port's protocol from appProtocol, which its name must not contradict (`grpc-otlp` is gRPC):
    a gRPC port taken for plain TCP or HTTP/1.1 loses per-call routing, retries and metrics."""
    if port.get("appProtocol") not in PROTOCOLS:
        return [f"needs appProtocol, one of Istio's protocols (not {port.get('appProtocol')!r})"]
    if named_protocol(port) not in (None, port["appProtocol"]):
        return [f"is named for {named_protocol(port)} but has appProtocol {port['appProtocol']}"]
    return []


def probe_port(probe: Obj) -> int | str | None:
    for handler in ("grpc", "httpGet", "tcpSocket"):
        if handler in probe:
            return probe[handler]["port"]
    return None


def probe_problems(objs: list[Obj]) -> list[str]:
    """Every part has the three probes: native gRPC ones on its gRPC port, HTTP ones for the gateway."""
    problems = []
    for workload in workloads(objs):
        ports, part = container_ports(workload), part_of(workload)
        for container in containers(workload):
            for kind in PROBES:
                probe = container.get(kind)
                if probe is None:
                    if part is not None:
                        problems.append(f"{ref(workload)}: {container['name']} has no {kind}")
                    continue
                port = probe_port(probe)
                if port is not None and port not in ports:
                    problems.append(f"{ref(workload)}: {kind} port {port} is no container port")
                if part in SERVICES and probe.get("grpc", {}).get("port") != ports.get("grpc"):
                    problems.append(f"{ref(workload)}: {kind} must be a native gRPC probe of the grpc port")
    return problems


def image_problems(objs: list[Obj]) -> list[str]:
    """Every image is pinned: a tag other than latest, or a digest."""
    problems = []
    for workload in workloads(objs):
        for container in containers(workload):
            image = container["image"]
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            if "@sha256:" not in image and tag in ("", "latest"):
                problems.append(f"{ref(workload)}: image {image} is not pinned to a tag or digest")
    return problems


def security_problems(objs: list[Obj]) -> list[str]:
    """Non-root, read-only, no privilege, no capability, RuntimeDefault seccomp, and resources for every container."""
    problems = []
    for workload in workloads(objs):
        pod = workload["spec"]["template"]["spec"].get("securityContext", {})
        if pod.get("runAsNonRoot") is not True or pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{ref(workload)}: the pod needs runAsNonRoot and seccompProfile RuntimeDefault")
        for container in containers(workload):
            ctx = container.get("securityContext", {})
            if (ctx.get("readOnlyRootFilesystem") is not True or ctx.get("allowPrivilegeEscalation") is not False
                    or ctx.get("capabilities", {}).get("drop") != ["ALL"]):
                problems.append(f"{ref(workload)}: {container['name']} must be read-only, unprivileged, drop ALL")
            if not {"requests", "limits"} <= set(container.get("resources", {})):
                problems.append(f"{ref(workload)}: {container['name']} needs resource requests and limits")
        if part_of(workload) and "/tmp" not in {m["mountPath"] for c in containers(workload)
                                                for m in c.get("volumeMounts", [])}:
            problems.append(f"{ref(workload)}: /tmp must be a writable volume")
    return problems


def part_problems(objs: list[Obj]) -> list[str]:
    """Each part: Deployment <part>-v1 (app, version: v1) run by its own ServiceAccount, a Service and a PDB."""
    problems = []
    for part in PARTS:
        deployment = named(objs, "Deployment", f"{part}-v1")
        if deployment is None or pod_labels(deployment) | {"app": part, "version": "v1"} != pod_labels(deployment):
            problems.append(f"{part}: no Deployment {part}-v1 with pod labels app: {part}, version: v1")
        elif deployment["spec"]["template"]["spec"].get("serviceAccountName") != part:
            problems.append(f"{part}: {part}-v1 must run as ServiceAccount {part}")
        if named(objs, "ServiceAccount", part) is None or named(objs, "Service", part) is None:
            problems.append(f"{part}: needs a ServiceAccount and a Service named {part}")
        if not any(pdb["spec"]["selector"].get("matchLabels") == {"app": part}
                   for pdb in of_kind(objs, "PodDisruptionBudget")):
            problems.append(f"{part}: no PodDisruptionBudget selecting app: {part}")
    return problems


def autoscaling_problems(objs: list[Obj]) -> list[str]:
    """Gateway and orchestrator scale by HPA (the orchestrator never below 2); the HPA alone sets their replicas."""
    problems = []
    for name, minimum in (("gateway", 1), ("orchestrator", 2)):
        hpa = named(objs, "HorizontalPodAutoscaler", name)
        if hpa is None or hpa["spec"].get("minReplicas", 1) < minimum:
            problems.append(f"{name}: needs a HorizontalPodAutoscaler with minReplicas >= {minimum}")
    for hpa in of_kind(objs, "HorizontalPodAutoscaler"):
        target = named(objs, hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"])
        if target is None:
            problems.append(f"{ref(hpa)}: scales {hpa['spec']['scaleTargetRef']['name']}, which does not exist")
        elif "replicas" in target["spec"]:
            problems.append(f"{ref(hpa)}: {ref(target)} sets replicas, which every apply would reset")
    return problems


def reference_problems(objs: list[Obj], external_secrets: frozenset[str] = frozenset()) -> list[str]:
    """ConfigMaps, Secrets (but those created outside, in production) and ServiceAccounts referred to exist."""
    problems = []
    for workload in workloads(objs):
        account = workload["spec"]["template"]["spec"].get("serviceAccountName")
        if account and named(objs, "ServiceAccount", account) is None:
            problems.append(f"{ref(workload)}: ServiceAccount {account} does not exist")
        for container in containers(workload):
            refs = [("ConfigMap", s["configMapRef"]) for s in container.get("envFrom", []) if "configMapRef" in s]
            refs += [("Secret", s["secretRef"]) for s in container.get("envFrom", []) if "secretRef" in s]
            for var in container.get("env", []):
                source = var.get("valueFrom", {})
                refs += [("ConfigMap", source["configMapKeyRef"])] if "configMapKeyRef" in source else []
                refs += [("Secret", source["secretKeyRef"])] if "secretKeyRef" in source else []
            for kind, target in refs:
                if kind == "Secret" and target["name"] in external_secrets:
                    continue
                found = named(objs, kind, target["name"])
                if found is None or ("key" in target and target["key"] not in found.get("data", {})):
                    problems.append(f"{ref(workload)}: {kind} {target['name']} {target.get('key', '')} not found")
    return problems


def workload_problems(objs: list[Obj], external_secrets: frozenset[str] = frozenset()) -> list[str]:
    return [*service_problems(objs), *probe_problems(objs), *image_problems(objs), *security_problems(objs),
            *part_problems(objs), *autoscaling_problems(objs), *reference_problems(objs, external_secrets)]
