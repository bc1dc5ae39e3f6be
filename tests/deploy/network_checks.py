"""Kubernetes NetworkPolicies read as the API server's model has them: which pods a policy selects, and whether the
policies of a namespace let a pod open a connection to another pod's port."""

from typing import Any

from .manifests import NAMESPACE, Obj, of_kind

NAME_LABEL = "kubernetes.io/metadata.name"  # every namespace carries its name as this label


def matches(selector: Obj, labels: dict[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions; an empty one selects everything)."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        held = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
                "Exists": key in labels, "DoesNotExist": key not in labels}[operator]
        if not held:
            return False
    return True


def peer_matches(peer: Obj, labels: dict[str, str], namespace: str) -> bool:
    """Whether a pod with these labels in `namespace` is the peer a rule names (no ipBlock is used here)."""
    if "ipBlock" in peer:
        return False
    in_namespace = (namespace == NAMESPACE if "namespaceSelector" not in peer
                    else matches(peer["namespaceSelector"], {NAME_LABEL: namespace}))
    return in_namespace and matches(peer.get("podSelector", {}), labels)


def port_matches(rule_port: Obj, port: int, named: dict[str | int, int]) -> bool:
    wanted: Any = rule_port.get("port")
    return wanted is None or named.get(wanted, wanted if isinstance(wanted, int) else None) == port


def admits(objs: list[Obj], target: dict[str, str], target_ports: dict[str | int, int], source: dict[str, str],
           source_namespace: str, port: int) -> bool:
    """Whether the namespace's ingress policies let the source pod connect to the target pod's `port`: yes if no
    policy selects the target, else if a rule of one that does names the source and the port."""
    selecting = [p for p in of_kind(objs, "NetworkPolicy")
                 if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
                 and matches(p["spec"]["podSelector"], target)]
    return not selecting or any(
        (not rule.get("from") or any(peer_matches(peer, source, source_namespace) for peer in rule["from"]))
        and (not rule.get("ports") or any(port_matches(p, port, target_ports) for p in rule["ports"]))
        for policy in selecting for rule in policy["spec"].get("ingress", []))


def reaches(peer: Obj, target: dict[str, str] | None, namespace: str | None) -> bool:
    """Whether an egress rule's peer names the destination: a pod with these labels in `namespace`, or (target None)
    an address outside the cluster's pods, which only an ipBlock names."""
    if "ipBlock" in peer or target is None or namespace is None:
        return "ipBlock" in peer and target is None
    return peer_matches(peer, target, namespace)


def egress_admits(objs: list[Obj], source: dict[str, str], target: dict[str, str] | None, namespace: str | None,
                  port: int) -> bool:
    """Whether the namespace's egress policies let the source pod open a connection to the destination's port: yes
    if no policy selects the source, else if a rule of one that does names the destination and the port."""
    selecting = [p for p in of_kind(objs, "NetworkPolicy")
                 if "Egress" in p["spec"].get("policyTypes", []) and matches(p["spec"]["podSelector"], source)]
    return not selecting or any(
        (not rule.get("to") or any(reaches(peer, target, namespace) for peer in rule["to"]))
        and (not rule.get("ports") or any(p.get("port") in (None, port) for p in rule["ports"]))
        for policy in selecting for rule in policy["spec"].get("egress", []))
