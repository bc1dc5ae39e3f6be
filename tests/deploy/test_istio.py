"""istio/ validates against Istio's models, matches the manifests, and lets each caller make exactly its calls."""

import re

import pytest

from sagashop.kit.settings import PARTS, SERVICES

from .conftest import OVERLAYS
from .manifests import NAMESPACE, ROOT, Obj, container_ports, of_kind, pod_labels, workloads
from .mesh_checks import allows, grpc_methods, mesh_problems, principals
from .suite import istio_tree_problems, mesh_of, versions_deployed

STEP_METHODS = {"inventory": ["ReserveStock", "ReleaseStock", "CommitStock"], "payment": ["Charge", "Refund"],
                "shipping": ["CreateShipment", "CancelShipment"],
                "order": ["CreateOrder", "ApproveOrder", "RejectOrder", "CancelOrder"]}
STUB_CALL = re.compile(r"\bstub\.([A-Z]\w+)(?:(?:\(|,\s*)(\w+?)_pb2\b)?")  # stub.Charge, payment_pb2.ChargeRequest(...
STEP_CALL = re.compile(r"\bself\.call\(\w+, \"(\w+)\", \"([A-Z]\w+)\"")  # self.call(run, "payment", "Charge", ...


def path(service: str, method: str) -> str:
    return f"/sagashop.v1.{service.capitalize()}Service/{method}"


def account(name: str) -> str:
    return f"cluster.local/ns/{NAMESPACE}/sa/{name}"


def allowed(istio: list[Obj], callee: str, caller: str, call: str) -> bool:
    """Whether the ALLOW policies of the callee's pods let the caller's ServiceAccount make this call."""
    policies = [p for p in of_kind(istio, "AuthorizationPolicy")
                if p["spec"].get("selector", {}).get("matchLabels") == {"app": callee}]
    for rule in (rule for p in policies for rule in p["spec"].get("rules", [])):
        paths = [q for to in rule.get("to", []) for q in to.get("operation", {}).get("paths", [])]
        if account(caller) in principals({"spec": {"rules": [rule]}}) and (
                not paths or any(call == q or (q.endswith("*") and call.startswith(q[:-1])) for q in paths)):
            return True
    return False


def owners() -> dict[str, set[str]]:
    """Method name -> the services declaring it (CancelOrder: order and orchestrator)."""
    found: dict[str, set[str]] = {}
    for method_path in (m for m in grpc_methods() if m.startswith("/sagashop.v1.")):
        service, method = method_path.removeprefix("/sagashop.v1.").split("/")
        found.setdefault(method, set()).add(service.removesuffix("Service").lower())
    return found


def calls_made_by(folder: str) -> set[tuple[str, str]]:
    """(service, method) of every `stub.<Method>` call in the code, the service told by the request's module, and
    of every saga step's `self.call(run, "<service>", "<Method>", ...)`."""
    by_name, calls = owners(), set()
    for text in (f.read_text() for f in (ROOT / folder).rglob("*.py")):
        for method, module in (m.groups() for m in STUB_CALL.finditer(text)):
            services = by_name.get(method, set())
            calls |= {(s, method) for s in ({module} & services or services)}
        calls |= {(s, method) for s, method in STEP_CALL.findall(text) if s in by_name.get(method, set())}
    return calls


def test_every_istio_object_validates_against_its_model_and_every_part_is_laid_out_for_canaries() -> None:
    assert istio_tree_problems(ROOT / "istio") == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_mesh_matches_the_rendered_manifests(rendered: dict[str, list[Obj]], istio: list[Obj],
                                                 overlay: str) -> None:
    objs = rendered[overlay]
    assert mesh_problems(mesh_of(objs), objs, versions_deployed(objs)) == []


def test_the_canary_overlay_gives_every_v2_subset_pods(rendered: dict[str, list[Obj]]) -> None:
    assert versions_deployed(rendered["kind-canary"]) == {"v1", "v2"}


def test_mtls_is_strict_for_the_namespace(istio: list[Obj]) -> None:
    (peer,) = of_kind(istio, "PeerAuthentication")
    assert (peer["metadata"]["namespace"], peer["spec"]) == (NAMESPACE, {"mtls": {"mode": "STRICT"}})
    assert any(p["spec"] == {} for p in of_kind(istio, "AuthorizationPolicy")), "deny by default"


@pytest.mark.parametrize("service", sorted(STEP_METHODS))
def test_only_the_orchestrator_may_call_the_saga_steps(istio: list[Obj], service: str) -> None:
    for method in STEP_METHODS[service]:
        callers = {c for c in ("gateway", *SERVICES) if allowed(istio, service, c, path(service, method))}
        assert callers == {"orchestrator"}, method


def test_only_the_gateway_may_call_the_orchestrator(istio: list[Obj]) -> None:
    for caller in ("orchestrator", *SERVICES):
        assert not allowed(istio, "orchestrator", caller, path("orchestrator", "StartCheckout"))
    assert allowed(istio, "orchestrator", "gateway", path("orchestrator", "StartCheckout"))


def test_only_the_gateway_may_call_notification_and_reporting(istio: list[Obj]) -> None:
    for service, method in (("notification", "ListNotifications"), ("reporting", "OrderEvents"),
                            ("reporting", "SalesReport"), ("reporting", "Rebuild")):
        callers = {c for c in ("gateway", *SERVICES) if allowed(istio, service, c, path(service, method))}
        assert callers == {"gateway"}, method


def test_only_notification_may_send_to_the_mail_sink_and_nobody_in_the_mesh_opens_its_ui(
        rendered: dict[str, list[Obj]]) -> None:
    mesh, sink = mesh_of(rendered["kind"]), {"app": "mailpit"}
    assert {part for part in PARTS if allows(mesh, sink, account(part), 1025)} == {"notification"}
    assert not any(allows(mesh, sink, account(part), 8025) for part in PARTS)


def test_the_gateway_may_make_every_call_its_routes_make(istio: list[Obj]) -> None:
    calls = calls_made_by("services/gateway")
    assert ("order", "GetOrder") in calls
    assert [c for c in calls if not allowed(istio, c[0], "gateway", path(*c))] == []
    for service in SERVICES:
        assert allowed(istio, service, "gateway", "/sagashop.v1.FaultService/AddFault")
        assert allowed(istio, service, "gateway", "/grpc.health.v1.Health/Check")  # GET /readyz


def test_the_orchestrator_may_make_every_call_its_sagas_make(istio: list[Obj]) -> None:
    calls = calls_made_by("services/orchestrator")
    assert ("payment", "Charge") in calls
    assert [c for c in calls if not allowed(istio, c[0], "orchestrator", path(*c))] == []


def test_the_gateway_may_not_make_saga_steps_and_nobody_else_gets_in(istio: list[Obj]) -> None:
    assert not allowed(istio, "payment", "gateway", path("payment", "Charge"))
    assert not allowed(istio, "payment", "shipping", path("payment", "ListLedger"))


def test_every_part_may_send_spans_to_the_collector_and_only_the_collector_to_jaeger(
        rendered: dict[str, list[Obj]], istio: list[Obj]) -> None:
    mesh = mesh_of(rendered["kind"])
    collector, jaeger = {"app": "otel-collector"}, {"app": "jaeger"}
    assert all(allows(mesh, collector, account(part), port) for part in PARTS for port in (4317, 4318))
    assert allows(mesh, jaeger, account("otel-collector"), 4317)
    assert not any(allows(mesh, jaeger, account(part), 4317) for part in PARTS)
    # the UI is for `kubectl port-forward`, which no policy sees: nobody in the mesh may open it
    assert not any(allows(mesh, jaeger, account(caller), 16686) for caller in (*PARTS, "otel-collector"))
    assert not allows(mesh, {"app": "payment"}, account("otel-collector"), 50054)


def test_the_canary_runner_may_call_nothing_in_the_mesh(rendered: dict[str, list[Obj]]) -> None:
    """The in-cluster analysis talks to Prometheus and the API server only; no policy lets it into a part."""
    objs = rendered["kind-canary"]
    mesh = mesh_of(objs)
    assert allows(mesh, {"app": "postgres"}, account("payment"), 5432)  # the model does let callers in
    assert not any(allows(mesh, pod_labels(w), account("canary-runner"), port) for w in workloads(objs)
                   for port in container_ports(w).values() if isinstance(port, int))
