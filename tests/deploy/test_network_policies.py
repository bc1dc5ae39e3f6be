"""The namespace takes no connection but from the callers Istio admits: the NetworkPolicies of every overlay admit
exactly, at the network's level, the caller -> callee pairs the mesh's AuthorizationPolicies allow at least one call
of, Prometheus to the metrics ports only, and nobody else."""

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


def mesh_allows_any_call(authorization: list[Obj], callee: dict[str, str], principal: str) -> bool:
    """Whether an ALLOW policy of the callee's pods names the principal in a rule (for some call or port)."""
    return any(principal in principals({"spec": {"rules": [rule]}})
               for policy in authorization if matches(policy["spec"].get("selector", {"matchLabels": {"x": "none"}}),
                                                      callee)
               for rule in policy["spec"].get("rules", []))


def served_port(workload: Obj) -> int:
    """The port a workload serves its callers on: its first container's first port."""
    return int(workload["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_pod_takes_connections_exactly_from_the_callers_the_mesh_allows(rendered: dict[str, list[Obj]],
                                                                         istio: list[Obj], overlay: str) -> None:
    objs = rendered[overlay]
    authorization = of_kind(istio + objs, "AuthorizationPolicy")
    pods = workloads(objs)
    wrong = []
    for callee in (w for w in pods if w["kind"] != "Job"):  # a Job serves nobody
        labels, ports, port = pod_labels(callee), container_ports(callee), served_port(callee)
        callers = [(pod_labels(w), NAMESPACE, account(w)) for w in pods] + [INGRESS]
        for caller_labels, namespace, principal in callers:
            expected = mesh_allows_any_call(authorization, labels, principal)
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
