"""The way in (the ingress Gateway and the VirtualServices bound to it), each check returning problems.

Every overlay: a client's `x-sagashop-route` is removed by every route of the ingress that forwards, no
VirtualService bound to the ingress is bound to `mesh` too (the removal would reach the calls inside the mesh), and
no VirtualService of the mesh removes it (the orchestrator's pins). A public overlay (every one but kind's) also:
HTTPS only (SIMPLE TLS with a credentialName its kustomization says how to create, port 80 redirecting), no route
chosen by the pin header, and the operations paths answered 404 while the API goes through.
"""

import re
from pathlib import Path

from .manifests import Obj, named, of_kind
from .mesh_checks import ROUTE_HEADER, where

MESH = "mesh"
HIDDEN = ("/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/console", "/console/sagas")
OPEN = ("/v1/products", "/v1/orders/o-1/saga/events")


def is_public(overlay: str) -> bool:
    return not overlay.startswith("kind")


def bound_gateways(vs: Obj) -> set[str]:
    return set(vs["spec"].get("gateways") or [MESH])


def removes_pin(route: Obj) -> bool:
    return ROUTE_HEADER in route.get("headers", {}).get("request", {}).get("remove", [])


def matches(match: Obj, path: str, headers: dict[str, str]) -> bool:
    """One HTTPMatchRequest against a request (uri exact/prefix/regex and exact headers: what the files use)."""
    uri = match.get("uri", {})
    if "exact" in uri and path != uri["exact"] or "prefix" in uri and not path.startswith(uri["prefix"]):
        return False
    if "regex" in uri and not re.fullmatch(uri["regex"], path):
        return False
    return all(headers.get(name) == rule.get("exact") for name, rule in match.get("headers", {}).items())


def first_route(vs: Obj, path: str, headers: dict[str, str] | None = None) -> Obj | None:
    """The route Envoy takes for the request: the first whose matches (any of them) hold, or a route without any."""
    for route in vs["spec"].get("http", []):
        if not route.get("match") or any(matches(m, path, headers or {}) for m in route["match"]):
            return route
    return None


def pin_problems(istio: list[Obj]) -> list[str]:
    problems = []
    for vs in of_kind(istio, "VirtualService"):
        gateways = bound_gateways(vs)
        for route in vs["spec"].get("http", []):
            if gateways - {MESH} and "route" in route and not removes_pin(route):
                problems.append(f"{where(vs, route)}: a route of the ingress must remove {ROUTE_HEADER}")
            if MESH in gateways and removes_pin(route):
                problems.append(f"{where(vs, route)}: removes {ROUTE_HEADER} inside the mesh, where sagas pin calls")
        if MESH in gateways and gateways - {MESH}:
            problems.append(f"{where(vs)}: bound to the ingress and to the mesh: keep them apart")
    return problems


def host_problems(istio: list[Obj]) -> list[str]:
    """A VirtualService bound to a Gateway routes hosts that Gateway serves (else nothing reaches its routes)."""
    problems = []
    for vs in of_kind(istio, "VirtualService"):
        for name in bound_gateways(vs) - {MESH}:
            gateway = named(istio, "Gateway", name)
            served = {h for s in (gateway or {"spec": {}})["spec"].get("servers", []) for h in s.get("hosts", [])}
            if gateway is None or not ("*" in served or set(vs["spec"].get("hosts", [])) <= served):
                problems.append(f"{where(vs)}: hosts {vs['spec'].get('hosts')} are not served by Gateway {name}")
    return problems


def public_problems(istio: list[Obj], kustomization: str) -> list[str]:
    problems = []
    for gateway in of_kind(istio, "Gateway"):
        for server in gateway["spec"].get("servers", []):
            protocol, tls = server["port"]["protocol"], server.get("tls", {})
            if protocol == "HTTP" and tls != {"httpsRedirect": True}:
                problems.append(f"{where(gateway)}: port {server['port']['number']} must only redirect to HTTPS")
            elif protocol == "HTTPS" and (tls.get("mode") != "SIMPLE" or not tls.get("credentialName")):
                problems.append(f"{where(gateway)}: HTTPS needs tls mode SIMPLE and a credentialName")
            elif protocol == "HTTPS" and not re.search(
                    rf"kubectl -n istio-system create secret tls {re.escape(tls['credentialName'])}\b", kustomization):
                problems.append(f"{where(gateway)}: the overlay does not say how to create the Secret "
                                f"{tls['credentialName']} (kubectl -n istio-system create secret tls ...)")
            elif protocol not in ("HTTP", "HTTPS"):
                problems.append(f"{where(gateway)}: port {server['port']['number']} speaks {protocol}")
        if "*" in {h for s in gateway["spec"].get("servers", []) for h in s.get("hosts", [])}:
            problems.append(f"{where(gateway)}: serves any host (*), not the shop's own")
    for vs in (v for v in of_kind(istio, "VirtualService") if bound_gateways(v) - {MESH}):
        problems += [f"{where(vs, r)}: routes by {ROUTE_HEADER}, a pin a client could set"
                     for r in vs["spec"].get("http", []) if any(ROUTE_HEADER in m.get("headers", {})
                                                                for m in r.get("match") or [])]
        for path in HIDDEN:
            route = first_route(vs, path)
            if route is None or route.get("directResponse", {}).get("status") != 404:
                problems.append(f"{where(vs)}: {path} must answer 404 at the edge")
        for path in OPEN:
            route = first_route(vs, path)
            if route is None or "route" not in route:
                problems.append(f"{where(vs)}: {path} must reach the gateway")
    return problems


def edge_problems(istio: list[Obj], overlay_dir: Path) -> list[str]:
    problems = [*pin_problems(istio), *host_problems(istio)]
    if is_public(overlay_dir.name):
        problems += public_problems(istio, (overlay_dir / "kustomization.yaml").read_text())
    return problems
