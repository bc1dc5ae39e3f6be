"""`sagashop canary` on copies of istio/ and on a fake kubectl holding a cluster's objects: the weights move in the
VirtualService and the ConfigMap of one part and nowhere else, and a fault keeps the pins and the weights."""

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from sagashop.kit.settings import PARTS
from tools.canary import faults, kube
from tools.canary import files as canary
from tools.cli import app

from .manifests import ROOT, Obj
from .mesh_checks import canary_layout_problems, route_problems, subset_problems
from .schema_checks import istio_problems

CONFIGMAP = ("configmap", "sagashop-canary")


class Cluster:
    """A fake kubectl: `get -o json` serves the objects it holds (nothing for a missing one, as --ignore-not-found
    does), `patch` applies a JSON patch (a failed `test` fails the command, as the API server does) or a merge
    patch of a ConfigMap's data. Every command is recorded."""

    def __init__(self, istio_dir: Path) -> None:
        docs = [d for path in sorted(istio_dir.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]
        self.objects: dict[tuple[str, str], Obj] = {
            (d["kind"].lower(), d["metadata"]["name"]): d for d in docs if d["kind"] in ("VirtualService", "ConfigMap")}
        for part in PARTS:
            self.objects["deployment", f"{part}-v1"] = {"metadata": {"name": f"{part}-v1"},
                                                        "status": {"readyReplicas": 2}}
        self.calls: list[tuple[str, ...]] = []
        self.contexts: set[str | None] = set()
        self.before_patch = lambda: None  # someone else's edit, made between our get and our patch

    def deploy_v2(self, part: str, ready: int) -> None:
        self.objects["deployment", f"{part}-v2"] = {"metadata": {"name": f"{part}-v2"},
                                                    "status": {"readyReplicas": ready} if ready else {}}

    def vs(self, part: str) -> Obj:
        return self.objects["virtualservice", part]

    def __call__(self, *args: str, context: str | None = None, stdin: str | None = None) -> str:
        self.calls.append(args)
        self.contexts.add(context)
        verb, kind, *rest = args
        if verb == "get" and rest[0] == "-n":
            return json.dumps({"items": [o for (k, _), o in self.objects.items() if k == kind]})
        if verb == "get":
            found = self.objects.get((kind, rest[0]))
            return json.dumps(found) if found else ""
        assert verb == "patch", args
        self.before_patch()
        target, body = self.objects[kind, rest[0]], json.loads(args[args.index("-p") + 1])
        if args[args.index("--type") + 1] == "merge":
            target["data"].update(body["data"])
        else:
            self.objects[kind, rest[0]] = json_patch(target, body)
        return f"{kind}/{rest[0]} patched"


def json_patch(obj: Obj, operations: list[Obj]) -> Obj:
    """RFC 6902's test, replace and add, all or nothing."""
    result = copy.deepcopy(obj)
    for op in operations:
        *parents, last = op["path"].split("/")[1:]
        container: Any = result
        for key in parents:
            container = container[int(key) if isinstance(container, list) else key]
        key: Any = int(last) if isinstance(container, list) else last
        if op["op"] == "test":
            present = key in container if isinstance(container, dict) else key < len(container)
            if not present or container[key] != op["value"]:
                raise kube.CanaryError(f"kubectl patch failed: testing value {op['path']} failed")
        if op["op"] in ("replace", "add"):
            assert op["op"] == "add" or key in container, op
            container[key] = op["value"]
    return result


@pytest.fixture
def istio_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(ROOT / "istio", tmp_path / "istio"))


@pytest.fixture
def cluster(istio_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    fake = Cluster(istio_dir)
    monkeypatch.setattr(kube, "kubectl", fake)
    return fake


def sagashop(*args: str) -> Any:
    return CliRunner().invoke(app, ["canary", *args])


def texts(istio_dir: Path) -> dict[Path, str]:
    return {p: p.read_text() for p in istio_dir.rglob("*.yaml")}


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    assert len(before.splitlines()) == len(after.splitlines())
    return [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]


def destinations(vs: Obj) -> dict[str, list[Obj]]:
    """Each route's destinations and weights, by the route's name."""
    return {route["name"]: route["route"] for route in vs["spec"]["http"]}


def test_set_rewrites_the_default_route_and_the_configmap_key_of_the_part_and_nothing_else(istio_dir: Path) -> None:
    before = texts(istio_dir)
    result = sagashop("set", "payment", "10", "--dir", str(istio_dir))
    assert result.exit_code == 0, result.output
    assert "payment: v1 90 / v2 10" in result.output
    after = texts(istio_dir)
    assert changed_lines(before[istio_dir / "payment.yaml"], after[istio_dir / "payment.yaml"]) == [
        ("      weight: 100", "      weight: 90"), ("      weight: 0", "      weight: 10")]
    weights = istio_dir / "canary-weights.yaml"
    assert changed_lines(before[weights], after[weights]) == [('  payment: "0"', '  payment: "10"')]
    assert [p.name for p in after if after[p] != before[p]] == ["canary-weights.yaml", "payment.yaml"]


def test_promote_then_rollback_gives_back_the_files_byte_for_byte(istio_dir: Path) -> None:
    before = texts(istio_dir)
    assert sagashop("promote", "orchestrator", "--dir", str(istio_dir)).exit_code == 0
    assert canary.file_weights("orchestrator", istio_dir) == (0, 100)
    assert canary.file_configmap(istio_dir)["orchestrator"] == "100"
    assert sagashop("rollback", "orchestrator", "--dir", str(istio_dir)).exit_code == 0
    assert texts(istio_dir) == before


def test_every_file_survives_a_load_and_a_dump_unchanged(istio_dir: Path) -> None:
    before = texts(istio_dir)
    for part in PARTS:
        canary.set_weights(part, canary.file_weights(part, istio_dir)[1], istio_dir)
        canary.set_configmap_weight(part, int(canary.file_configmap(istio_dir)[part]), istio_dir)
    assert texts(istio_dir) == before


def test_the_configmap_holds_every_part_at_0() -> None:
    assert canary.file_configmap(ROOT / "istio") == {part: "0" for part in PARTS}


def test_a_canary_applied_patches_the_parts_virtualservice_and_configmap_key_only(istio_dir: Path,
                                                                                 cluster: Cluster) -> None:
    cluster.deploy_v2("user", ready=1)
    untouched = copy.deepcopy({k: o for k, o in cluster.objects.items() if k != ("virtualservice", "user")})
    result = sagashop("set", "user", "10", "--apply", "--context", "kind-sagashop", "--dir", str(istio_dir))
    assert result.exit_code == 0, result.output
    assert [c[:3] for c in cluster.calls] == [("get", "deployment", "user-v2"), ("get", "virtualservice", "user"),
                                              ("patch", "virtualservice", "user"), ("patch", "configmap",
                                                                                    "sagashop-canary")]
    assert cluster.contexts == {"kind-sagashop"}
    assert not any("env" in call for call in cluster.calls)
    assert canary.weights_of(cluster.vs("user")) == (90, 10)
    assert cluster.objects[CONFIGMAP]["data"] == {part: "10" if part == "user" else "0" for part in PARTS}
    assert {k: o for k, o in cluster.objects.items() if k not in (("virtualservice", "user"), CONFIGMAP)} == {
        k: o for k, o in untouched.items() if k != CONFIGMAP}
    assert canary.file_weights("user", istio_dir) == (90, 10)  # the files follow
    assert canary.file_configmap(istio_dir)["user"] == "10"


@pytest.mark.parametrize("ready", [0, None], ids=["no-ready-pod", "no-deployment"])
def test_a_canary_without_a_ready_v2_is_refused_and_nothing_changes(istio_dir: Path, cluster: Cluster,
                                                                   ready: int | None) -> None:
    if ready is not None:
        cluster.deploy_v2("payment", ready)
    before, objects = texts(istio_dir), copy.deepcopy(cluster.objects)
    result = sagashop("set", "payment", "10", "--apply", "--dir", str(istio_dir))
    assert result.exit_code == 2
    assert "error: payment-v2 has no ready pods" in result.output
    assert [c for c in cluster.calls if c[0] == "patch"] == []
    assert (texts(istio_dir), cluster.objects) == (before, objects)
    assert sagashop("rollback", "payment", "--apply", "--dir", str(istio_dir)).exit_code == 0  # 0 % needs no v2


def test_the_default_route_is_found_in_the_live_object_and_an_edit_made_meanwhile_wins(istio_dir: Path,
                                                                                      cluster: Cluster) -> None:
    cluster.deploy_v2("order", ready=1)
    debug = {"name": "debug", "match": [{"headers": {"x-debug": {"exact": "1"}}}],
             "route": [{"destination": {"host": "order", "subset": "v2"}}], "retries": {"attempts": 0},
             "timeout": "60s"}
    cluster.vs("order")["spec"]["http"].insert(2, debug)  # live only: the default route is the 4th there
    assert sagashop("set", "order", "20", "--apply", "--dir", str(istio_dir)).exit_code == 0
    patch = json.loads(next(c for c in cluster.calls if c[:2] == ("patch", "virtualservice"))[-1])
    assert {op["path"].split("/route/")[0] for op in patch} == {"/spec/http/3"}
    assert cluster.vs("order")["spec"]["http"][2] == debug
    assert canary.weights_of(cluster.vs("order")) == (80, 20)

    def meanwhile() -> None:
        for d in cluster.vs("order")["spec"]["http"][3]["route"]:
            d["weight"] = 50
    cluster.before_patch = meanwhile
    result = sagashop("set", "order", "40", "--apply", "--dir", str(istio_dir))
    assert result.exit_code == 2
    assert "error: virtualservice/order is unchanged (if it was edited meanwhile, run the command again)" in (
        result.output)
    assert canary.weights_of(cluster.vs("order")) == (50, 50)
    assert cluster.objects[CONFIGMAP]["data"]["order"] == "20"
    assert canary.file_weights("order", istio_dir) == (80, 20)  # the cluster refused: the files stay


def test_cluster_only_patches_the_cluster_and_leaves_the_files_alone(istio_dir: Path, cluster: Cluster) -> None:
    cluster.deploy_v2("shipping", ready=3)
    before = texts(istio_dir)
    result = sagashop("set", "shipping", "25", "--apply", "--cluster-only", "--dir", str(istio_dir / "absent"))
    assert result.exit_code == 0, result.output
    assert canary.weights_of(cluster.vs("shipping")) == (75, 25)
    assert cluster.objects[CONFIGMAP]["data"]["shipping"] == "25"
    assert texts(istio_dir) == before
    refused = sagashop("set", "shipping", "25", "--cluster-only", "--dir", str(istio_dir))
    assert refused.exit_code == 2
    assert "--cluster-only changes the cluster alone: it needs --apply" in refused.output


def test_status_lists_the_files_alone_without_a_context(istio_dir: Path) -> None:
    canary.set_weights("shipping", 25, istio_dir)
    result = sagashop("status", "--dir", str(istio_dir))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split() == ["PART", "VS-FILE", "MAP-FILE"]
    assert [line.split() for line in lines[2:]] == [
        [part, "25", "0", "(differs)"] if part == "shipping" else [part, "0", "0"] for part in PARTS]


def test_status_with_a_context_shows_the_three_sources_and_flags_what_differs(istio_dir: Path,
                                                                            cluster: Cluster) -> None:
    for part in PARTS:
        cluster.deploy_v2(part, ready=2)
    assert sagashop("set", "payment", "10", "--apply", "--dir", str(istio_dir)).exit_code == 0
    cluster.objects[CONFIGMAP]["data"]["inventory"] = "30"  # an edit of the ConfigMap alone
    cluster.deploy_v2("user", ready=0)
    cluster.vs("user")["spec"]["http"][-1]["route"][1]["weight"] = 5  # and of a VirtualService alone
    cluster.vs("user")["spec"]["http"][-1]["route"][0]["weight"] = 95
    result = sagashop("status", "--context", "kind-sagashop", "--dir", str(istio_dir))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split() == ["PART", "VS-FILE", "MAP-FILE", "VS", "CONFIGMAP", "V2-READY"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert rows["payment"] == ["10", "10", "10", "10", "2"]
    assert rows["inventory"] == ["0", "0", "0", "30", "2", "(differs)"]
    assert rows["user"] == ["0", "0", "5", "0", "0", "(differs)", "(v2", "not", "ready)"]
    assert rows["gateway"] == ["0", "0", "0", "0", "2"]


def faulted(istio_dir: Path, part: str, *args: str) -> Obj:
    result = sagashop("fault", part, *args, "--dir", str(istio_dir))
    assert result.exit_code == 0, result.output
    return virtual_service((istio_dir / f"{part}.yaml").read_text())


def virtual_service(text: str) -> Obj:
    return next(d for d in yaml.safe_load_all(text) if d["kind"] == "VirtualService")


def mesh_problems_of(vs: Obj) -> list[str]:
    """The Istio model in strict mode, the canary layout, and the routes' and subsets' rules of istio/."""
    rules = next(d for d in yaml.safe_load_all((ROOT / "istio" / f"{vs['metadata']['name']}.yaml").read_text())
                 if d["kind"] == "DestinationRule")
    return [*istio_problems([vs]), *canary_layout_problems(vs), *route_problems([vs]), *subset_problems([vs, rules])]


@pytest.mark.parametrize("args", [
    ["abort", "--percent", "50"],
    ["abort", "--percent", "100", "--status", "deadline_exceeded", "--method", "Charge"],
    ["delay", "--percent", "12.5", "--delay", "2s"],
    ["delay", "--percent", "50", "--delay", "500ms", "--method", "Refund"]])
def test_a_fault_keeps_the_pins_and_the_weights_and_clear_undoes_it_exactly(istio_dir: Path, args: list[str]) -> None:
    canary.set_weights("payment", 25, istio_dir)
    before = (istio_dir / "payment.yaml").read_text()
    original = virtual_service(before)
    vs = faulted(istio_dir, "payment", *args)
    assert mesh_problems_of(vs) == []
    routes = destinations(vs)
    assert {name: routes[name] for name in destinations(original)} == destinations(original)
    with_fault = [route["name"] for route in vs["spec"]["http"] if "fault" in route]
    assert with_fault == [f"{name}-fault" if "--method" in args else name for name in destinations(original)]
    if "--method" in args:
        method = f"/sagashop.v1.PaymentService/{args[-1]}"
        copies = vs["spec"]["http"][:3]
        assert [r["name"] for r in copies] == ["v2-by-header-fault", "v1-by-header-fault", "default-fault"]
        assert [r["match"] for r in copies] == [[{**m, "uri": {"exact": method}} for m in r.get("match", [{}])]
                                                for r in original["spec"]["http"]]
        assert vs["spec"]["http"][3:] == original["spec"]["http"]  # every other method routes as before
        assert canary.file_weights("payment", istio_dir) == (75, 25)
    assert sagashop("fault", "payment", "clear", "--dir", str(istio_dir)).exit_code == 0
    assert (istio_dir / "payment.yaml").read_text() == before


def test_a_fault_on_the_gateway_answers_an_http_status() -> None:
    assert faults.abort("gateway", 10, None, None).spec == {"abort": {"httpStatus": 503, "percentage": {"value": 10}}}


def test_a_fault_applied_patches_the_live_routes_and_a_shift_meanwhile_weighs_its_copies_too(
        istio_dir: Path, cluster: Cluster) -> None:
    cluster.deploy_v2("inventory", ready=1)
    original = copy.deepcopy(cluster.vs("inventory"))
    result = sagashop("fault", "inventory", "abort", "--percent", "30", "--method", "ReserveStock", "--apply",
                      "--cluster-only")
    assert result.exit_code == 0, result.output
    patch = json.loads(cluster.calls[-1][-1])
    assert [(op["op"], op["path"]) for op in patch] == [("test", "/spec/http"), ("replace", "/spec/http")]
    assert mesh_problems_of(cluster.vs("inventory")) == []
    assert sagashop("set", "inventory", "30", "--apply", "--cluster-only").exit_code == 0
    defaults = [r for r in cluster.vs("inventory")["spec"]["http"] if r["name"] in ("default", "default-fault")]
    assert [[d["weight"] for d in r["route"]] for r in defaults] == [[70, 30], [70, 30]]  # v1, v2
    assert sagashop("fault", "inventory", "clear", "--apply", "--cluster-only").exit_code == 0
    canary.weigh(original, 30)
    assert cluster.vs("inventory") == original
    assert canary.file_weights("inventory", istio_dir) == (100, 0)  # --cluster-only: the file never moved


@pytest.mark.parametrize(("args", "message"), [
    (["payment", "abort", "--percent", "101"], "--percent must be within 0..100, not 101"),
    (["payment", "abort", "--percent", "-1"], "--percent must be within 0..100, not -1"),
    (["payment", "abort", "--percent", "5", "--status", "BROKEN"], "unknown gRPC status 'BROKEN': expected one of"),
    (["payment", "abort"], "fault abort needs --percent"),
    (["payment", "abort", "--percent", "5", "--method", "Steal"],
     "sagashop.v1.PaymentService has no method 'Steal': expected one of Charge, Refund, ListLedger"),
    (["payment", "abort", "--percent", "5", "--delay", "2s"], "fault abort takes no --delay"),
    (["payment", "delay", "--percent", "5"], "fault delay needs --delay"),
    (["payment", "delay", "--percent", "5", "--delay", "0s"], "a positive duration"),
    (["payment", "delay", "--percent", "5", "--delay", "soon"], "a positive duration"),
    (["payment", "delay", "--percent", "5", "--delay", "0.0001s"], "the delay must be 1ms or more"),
    (["payment", "clear", "--percent", "5"], "fault clear takes no --percent"),
    (["gateway", "abort", "--percent", "5", "--status", "UNAVAILABLE"], "--status must be an HTTP error status"),
    (["gateway", "delay", "--percent", "5", "--delay", "1s", "--method", "Charge"], "the gateway speaks HTTP"),
    (["billing", "abort", "--percent", "5"], "unknown service 'billing'"),
    (["payment", "abort", "--percent", "5", "--cluster-only"], "it needs --apply"),
])
def test_a_bad_fault_is_refused_with_exit_code_2_and_changes_nothing(istio_dir: Path, args: list[str],
                                                                    message: str) -> None:
    before = texts(istio_dir)
    result = sagashop("fault", *args, "--dir", str(istio_dir))
    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split())
    assert texts(istio_dir) == before


def test_a_second_fault_is_refused_until_the_first_is_cleared(istio_dir: Path) -> None:
    faulted(istio_dir, "shipping", "delay", "--percent", "10", "--delay", "1s")
    result = sagashop("fault", "shipping", "abort", "--percent", "10", "--dir", str(istio_dir))
    assert result.exit_code == 2
    assert "has a fault already: `sagashop canary fault shipping clear` first" in result.output


@pytest.mark.parametrize("args", [["set", "billing", "10"], ["promote", "postgres"], ["rollback", "faults"]])
def test_an_unknown_service_is_refused_with_exit_code_2(istio_dir: Path, args: list[str]) -> None:
    before = texts(istio_dir)
    result = sagashop(*args, "--dir", str(istio_dir))
    assert result.exit_code == 2
    assert "unknown service" in result.output
    assert texts(istio_dir) == before


@pytest.mark.parametrize("percent", ["101", "-1", "ten"])
def test_a_percent_outside_0_to_100_is_refused_with_exit_code_2(istio_dir: Path, percent: str) -> None:
    result = sagashop("set", "payment", percent, "--dir", str(istio_dir))
    assert result.exit_code == 2
    assert canary.file_weights("payment", istio_dir) == (100, 0)


def test_set_weights_refuses_a_percent_outside_0_to_100(istio_dir: Path) -> None:
    with pytest.raises(canary.CanaryError, match="within 0..100"):
        canary.set_weights("payment", 120, istio_dir)
