"""The way in: production speaks HTTPS for its own host, hides the operations paths and takes no version pin from
clients; kind stays plain HTTP; every overlay removes a client's pin at the edge and keeps the mesh's pins."""

import pytest

from .conftest import OVERLAYS
from .edge_checks import HIDDEN, edge_problems, first_route, removes_pin
from .manifests import ROOT, Obj, named
from .mesh_checks import ROUTE_HEADER
from .suite import mesh_of


def edge(objs: list[Obj]) -> tuple[Obj, Obj]:
    gateway, vs = named(objs, "Gateway", "sagashop"), named(objs, "VirtualService", "gateway")
    assert gateway is not None and vs is not None
    return gateway, vs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_s_edge_passes_its_checks(rendered: dict[str, list[Obj]], overlay: str) -> None:
    assert edge_problems(mesh_of(rendered[overlay]), ROOT / "deploy/k8s/overlays" / overlay) == []


def test_production_speaks_https_only_with_the_documented_certificate(rendered: dict[str, list[Obj]]) -> None:
    gateway, vs = edge(rendered["production"])
    https, http = gateway["spec"]["servers"]
    assert (https["port"]["number"], https["port"]["protocol"]) == (443, "HTTPS")
    assert https["tls"] == {"mode": "SIMPLE", "credentialName": "sagashop-tls"}
    assert (http["port"]["number"], http["tls"]) == (80, {"httpsRedirect": True})
    assert https["hosts"] == http["hosts"] == vs["spec"]["hosts"] == ["shop.example.com"]
    text = (ROOT / "deploy/k8s/overlays/production/kustomization.yaml").read_text()
    assert "kubectl -n istio-system create secret tls sagashop-tls" in text and "CHANGE IT" in text


def test_production_hides_the_operations_paths_and_takes_no_pin_from_clients(rendered: dict[str, list[Obj]]) -> None:
    _, vs = edge(rendered["production"])
    for path in HIDDEN:
        route = first_route(vs, path)
        assert route is not None and route == first_route(vs, path, {ROUTE_HEADER: "v2"})
        assert route["directResponse"] == {"status": 404}
    api = first_route(vs, "/v1/products", {ROUTE_HEADER: "v2"})
    assert api is not None and api["name"] == "default" and removes_pin(api)


def test_kind_stays_plain_http_and_lets_a_client_pin_the_gateway_whose_pin_goes_no_further(
        rendered: dict[str, list[Obj]]) -> None:
    gateway, vs = edge(rendered["kind"])
    assert gateway["spec"]["servers"] == [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]
    pinned = first_route(vs, "/v1/products", {ROUTE_HEADER: "v2"})
    assert pinned is not None and pinned["route"][0]["destination"]["subset"] == "v2" and removes_pin(pinned)
    assert "route" in first_route(vs, "/metrics")  # type: ignore[operator]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_mesh_s_own_routes_keep_the_pins_of_the_orchestrator(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    for part in ("order", "inventory", "payment", "shipping"):
        vs = named(objs, "VirtualService", part)
        assert vs is not None and "gateways" not in vs["spec"]
        assert first_route(vs, "/x", {ROUTE_HEADER: "v2"})["route"] == [  # type: ignore[index]
            {"destination": {"host": part, "subset": "v2"}}]
        assert not any(removes_pin(r) for r in vs["spec"]["http"])
