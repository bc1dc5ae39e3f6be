"""The namespace takes no connection but from the callers Istio admits: the NetworkPolicies of every overlay admit
exactly, at the network's level, the caller -> callee pairs the mesh's AuthorizationPolicies allow at least one call
of, Prometheus to the metrics ports only, and nobody else."""

from itertools import product

import pytest

from .conftest import OVERLAYS
from .manifests import NAMESPACE, Obj, container_ports, of_kind, pod_labels, workloads
from .mesh_checks import EXTERNAL_PRINCIPALS, principals
from .network_checks import admits, matches

INGRESS = ({"istio": "ingressgateway"}, "istio-system", next(iter(EXTERNAL_PRINCIPALS)))
PROMETHEUS = ({"app.kubernetes.io/name": "prometheus"}, "monitoring")
SIDECAR_METRICS = 15020  # Istio's merged metrics, where Prometheus scrapes a pod with a sidecar


def account(workload: Obj) -> str:
    return f"cluster.local/ns/{NAMESPACE}/sa/{workload['spec']['template']['spec'].get('serviceAccountName')}"


def callee_policies(authorization: list[Obj], callee: dict[str, str]) -> list[Obj]:
    return [policy for policy in authorization
            if matches(policy["spec"].get("selector", {"matchLabels": {"x": "none"}}), callee)]


def rule_ports(rule: Obj) -> set[int]:
    return {int(port) for to in rule.get("to", []) for port in to.get("operation", {}).get("ports", [])}


def mesh_allows_any_call(authorization: list[Obj], callee: dict[str, str], principal: str, port: int) -> bool:
    """Whether an ALLOW policy of the callee's pods names the principal in a rule for this port (a rule naming no
    port: for some call on any)."""
    return any(principal in principals({"spec": {"rules": [rule]}}) and port in (rule_ports(rule) or {port})
               for policy in callee_policies(authorization, callee) for rule in policy["spec"].get("rules", []))


def served_ports(workload: Obj, authorization: list[Obj]) -> set[int]:
    """The ports a workload serves its callers on: its first container's first port, and every port its pods'
    policies name (a NATS cluster's route port)."""
    first = int(workload["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"])
    return {first} | {port for policy in callee_policies(authorization, pod_labels(workload))
                      for rule in policy["spec"].get("rules", []) for port in rule_ports(rule)}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_pod_takes_connections_exactly_from_the_callers_the_mesh_allows(rendered: dict[str, list[Obj]],
                                                                         istio: list[Obj], overlay: str) -> None:
    objs = rendered[overlay]
    authorization = of_kind(istio + objs, "AuthorizationPolicy")
    pods = workloads(objs)
    wrong = []
    for callee in (w for w in pods if w["kind"] != "Job"):  # a Job serves nobody
        labels, ports = pod_labels(callee), container_ports(callee)
        callers = [(pod_labels(w), NAMESPACE, account(w)) for w in pods] + [INGRESS]
        for (caller_labels, namespace, principal), port in product(callers, served_ports(callee, authorization)):
            expected = mesh_allows_any_call(authorization, labels, principal, port)
            if admits(objs, labels, ports, caller_labels, namespace, port) != expected:
                wrong.append(f"{caller_labels.get('app', principal)} -> {labels['app']}:{port}: mesh {expected}")
    assert wrong == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_reaches_the_metrics_ports_only_and_a_stranger_nothing(rendered: dict[str, list[Obj]],
                                                                          overlay: str) -> None:
    objs = rendered[overlay]
    for pod in workloads(objs):
        labels, ports = pod_labels(pod), container_ports(pod)
        metrics = {p for name, p in ports.items() if name in ("metrics", "http")}
        for port in {p for p in ports.values()} | {SIDECAR_METRICS}:
            scraped = metrics and port in metrics | {SIDECAR_METRICS}
            assert admits(objs, labels, ports, *PROMETHEUS, port) == bool(scraped), (labels["app"], port)
            assert not admits(objs, labels, ports, {"app": "stranger"}, NAMESPACE, port), (labels["app"], port)
            assert not admits(objs, labels, ports, {"app": "gateway"}, "elsewhere", port), (labels["app"], port)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_policy_selects_pods_and_names_ports_they_have(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    policies = of_kind(objs, "NetworkPolicy")
    assert [p["metadata"]["name"] for p in policies if p["spec"]["podSelector"] == {}] == ["default-deny-ingress"]
    for policy in (p for p in policies if p["spec"]["podSelector"]):
        selected = [w for w in workloads(objs) if matches(policy["spec"]["podSelector"], pod_labels(w))]
        assert selected, policy["metadata"]["name"]
        named = {p["port"] for rule in policy["spec"].get("ingress", []) for p in rule.get("ports", [])
                 if isinstance(p["port"], str)}
        assert all(named <= set(container_ports(w)) for w in selected), policy["metadata"]["name"]
