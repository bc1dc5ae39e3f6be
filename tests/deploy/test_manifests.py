"""The kustomize tree renders, validates strictly, and gives every part what it needs in a cluster."""

import re

import pytest
import yaml

from sagashop.kit.settings import PARTS, SERVICES

from .canary_checks import RUNNER_RULES, canary_problems, default_weights, job_problems, mount_problems, runner_problems
from .conftest import OVERLAYS
from .env_checks import config_problems, coverage_problems, env_problems, environment
from .mail_checks import VARIABLE, mail_problems, secret_value
from .manifests import ROOT, RUN_JOB, Obj, named, of_kind, part_of, pod_labels
from .nats_checks import nats_problems
from .pod_checks import database_problems, drain_problems
from .schema_checks import is_istio, istio_problems, kubernetes_problems
from .suite import external_secrets, mesh_of
from .tracing_checks import COLLECTOR_IMAGE, JAEGER_IMAGE, running, tracing_problems
from .workload_checks import workload_problems

TREES = ["base", *OVERLAYS]
MAILPIT_IMAGE = re.compile(r"(^|/)axllent/mailpit(:|@|$)")


def config_value(objs: list[Obj], key: str) -> str:
    config = next(c for c in of_kind(objs, "ConfigMap") if c["metadata"]["name"].startswith("sagashop-config"))
    return config["data"][key]


def test_there_are_kind_canary_and_production_overlays() -> None:
    assert {"kind", "kind-canary", "production"} <= set(OVERLAYS)


@pytest.mark.parametrize("tree", TREES)
def test_the_tree_renders_with_kustomize(rendered: dict[str, list[Obj]], tree: str) -> None:
    kinds = {o["kind"] for o in rendered[tree]}
    assert {"Deployment", "Service", "ServiceAccount", "StatefulSet", "ConfigMap", "HorizontalPodAutoscaler",
            "PodDisruptionBudget", "Namespace"} <= kinds


@pytest.mark.parametrize("tree", TREES)
def test_every_object_validates_against_the_strict_kubernetes_schemas(rendered: dict[str, list[Obj]],
                                                                      tree: str) -> None:
    assert kubernetes_problems(rendered[tree]) == []


@pytest.mark.parametrize("tree", TREES)
def test_every_istio_object_of_the_tree_validates_against_its_model(rendered: dict[str, list[Obj]], tree: str) -> None:
    assert istio_problems([o for o in rendered[tree] if is_istio(o)]) == []


@pytest.mark.parametrize("tree", TREES)
def test_every_workload_is_wired_pinned_and_locked_down(rendered: dict[str, list[Obj]], tree: str) -> None:
    objs = rendered[tree]
    assert workload_problems(objs, external_secrets(objs)) == []


@pytest.mark.parametrize("tree", TREES)
def test_every_part_gets_every_variable_it_must_have_in_a_cluster(rendered: dict[str, list[Obj]], tree: str) -> None:
    objs = rendered[tree]
    assert env_problems(objs) + config_problems(objs) + coverage_problems(objs) == []


def test_the_kind_overlay_turns_faults_on_and_generates_dev_only_secrets(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["kind"]
    assert config_value(objs, "SAGASHOP_FAULTS_ENABLED") == "true"
    (secret,) = of_kind(objs, "Secret")
    assert set(secret["data"]) == {"internal-secret", "jwt-secret", "admin-password", "db-password", "smtp-url",
                                   *(f"db-password-{s}" for s in SERVICES)}
    assert {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in of_kind(objs, "Deployment")
            if part_of(d)} == {"sagashop:0.1.0"}


@pytest.mark.parametrize("overlay", ["kind", "kind-canary"])
def test_the_kind_overlays_send_every_part_s_spans_through_a_collector_to_jaeger(rendered: dict[str, list[Obj]],
                                                                               istio: list[Obj], overlay: str) -> None:
    objs = rendered[overlay]
    assert [d["metadata"]["name"] for d in running(objs, COLLECTOR_IMAGE)] == ["otel-collector"]
    assert [d["metadata"]["name"] for d in running(objs, JAEGER_IMAGE)] == ["jaeger"]
    assert config_value(objs, "OTEL_EXPORTER_OTLP_ENDPOINT") == "http://otel-collector.sagashop:4318"
    assert tracing_problems(mesh_of(objs), objs) == []


def test_production_leaves_traces_to_a_backend_of_its_own(rendered: dict[str, list[Obj]], istio: list[Obj]) -> None:
    objs = rendered["production"]
    assert running(objs, COLLECTOR_IMAGE) == running(objs, JAEGER_IMAGE) == []
    assert {p["metadata"]["name"] for p in of_kind(objs, "AuthorizationPolicy")} == {
        p["metadata"]["name"] for p in of_kind(istio, "AuthorizationPolicy")}  # istio/'s only, none for traces
    config = next(c for c in of_kind(objs, "ConfigMap") if c["metadata"]["name"].startswith("sagashop-config"))
    assert not [key for key in config["data"] if key.startswith("OTEL_")]


def test_production_turns_faults_off_expects_its_secret_and_runs_more_replicas(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["production"]
    assert config_value(objs, "SAGASHOP_FAULTS_ENABLED") == "false"
    assert of_kind(objs, "Secret") == []
    assert all(named(objs, "Deployment", f"{part}-v1")["spec"]["replicas"] >= 2  # type: ignore[index]
               for part in PARTS if part not in ("gateway", "orchestrator"))
    assert all(hpa["spec"]["minReplicas"] >= 2 for hpa in of_kind(objs, "HorizontalPodAutoscaler"))


def test_the_canary_overlay_runs_payment_v2_alone_at_one_weight_everywhere(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["kind-canary"]
    canaries = {d["metadata"]["name"]: d for d in of_kind(objs, "Deployment") if pod_labels(d).get("version") == "v2"}
    assert set(canaries) == {f"{part}-v2" for part in PARTS}
    assert {name for name, d in canaries.items() if d["spec"]["replicas"]} == {"payment-v2"}
    weights = named(objs, "ConfigMap", "sagashop-canary")["data"]  # type: ignore[index]
    assert weights == {part: "10" if part == "payment" else "0" for part in PARTS}
    assert default_weights(named(objs, "VirtualService", "payment")) == {"v1": 90, "v2": 10}  # type: ignore[arg-type]
    assert not any("SAGASHOP_CANARY_PERCENT" in str(o) for tree in rendered.values() for o in tree)
    assert all(d["spec"]["selector"]["matchLabels"]["version"] == "v2" for d in canaries.values())
    hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(objs, "HorizontalPodAutoscaler")}
    assert hpa_targets == {"gateway-v1", "orchestrator-v1"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_istio_s_files_and_its_canary_pieces_agree(rendered: dict[str, list[Obj]],
                                                                        istio: list[Obj], overlay: str) -> None:
    objs = rendered[overlay]
    files = {(o["kind"], o["metadata"]["name"]) for o in istio if o["_file"].count("/") == 0}
    assert files <= {(o["kind"], o["metadata"].get("name")) for o in objs}
    assert canary_problems(objs) == []
    assert mount_problems(objs) == [] and named(objs, "ConfigMap", "sagashop-canary") is not None


def test_the_in_cluster_canary_run_may_do_what_it_needs_and_nothing_more(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["kind-canary"]
    (job,) = of_kind(objs, "Job")
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "canary-runner"
    assert named(objs, "ServiceAccount", "canary-runner") is not None
    assert named(objs, "Role", "canary-runner")["rules"] == RUNNER_RULES  # type: ignore[index]
    assert job_problems(objs) == [] and runner_problems(objs) == []
    assert workload_problems(objs) == []  # non-root, read-only, resources, its ServiceAccount exists
    for tree in ("kind", "production"):
        assert named(rendered[tree], "ServiceAccount", "canary-runner") is None
        assert of_kind(rendered[tree], "Job") == []


@pytest.mark.parametrize("part", PARTS)
def test_the_documented_command_makes_the_job_of_any_part(rendered: dict[str, list[Obj]], part: str) -> None:
    text = (ROOT / RUN_JOB).read_text()
    assert r"sed 's/\bpayment\b/order/g' deploy/k8s/components/canary/run-job.yaml | kubectl create -f -" in text
    (job,) = yaml.safe_load_all(re.sub(r"\bpayment\b", part, text))
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][:3] == ["canary", "run", part]
    assert job["metadata"]["generateName"] == f"canary-run-{part}-"
    objs = [o for o in rendered["kind-canary"] if o["kind"] != "Job"] + [job]
    assert kubernetes_problems([job]) == [] and job_problems(objs) == []


@pytest.mark.parametrize("tree", OVERLAYS)
def test_each_part_connects_to_postgresql_as_its_own_role(rendered: dict[str, list[Obj]], tree: str) -> None:
    objs = rendered[tree]
    assert database_problems(objs, mesh_of(objs)) == []
    urls = {part_of(d): environment(d["spec"]["template"]["spec"]["containers"][0], objs)["SAGASHOP_DATABASE_URL"]
            for d in of_kind(objs, "Deployment") if part_of(d) in SERVICES}
    assert urls == {s: f"postgresql://sagashop_{s}@postgres:5432/sagashop" for s in SERVICES}


@pytest.mark.parametrize("tree", TREES)
def test_every_sidecar_outlasts_its_app_s_drain_within_the_grace_period(rendered: dict[str, list[Obj]],
                                                                         tree: str) -> None:
    assert drain_problems(rendered[tree]) == []
    gateway = named(rendered[tree], "Deployment", "gateway-v1")
    assert gateway["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == (  # type: ignore[index]
        "/readyz/self")


@pytest.mark.parametrize("tree", TREES)
def test_every_pod_with_a_database_fits_the_servers_connections_at_its_pools_peak(rendered: dict[str, list[Obj]],
                                                                                 tree: str) -> None:
    objs = rendered[tree]
    most = {h["spec"]["scaleTargetRef"]["name"]: h["spec"]["maxReplicas"]
            for h in of_kind(objs, "HorizontalPodAutoscaler")}
    pods = sum(most.get(w["metadata"]["name"], w["spec"].get("replicas", 1)) for w in of_kind(objs, "Deployment")
               if part_of(w) in SERVICES)
    pool = int(config_value(objs, "SAGASHOP_DATABASE_POOL_SIZE"))
    server = named(objs, "StatefulSet", "postgres")
    assert server is not None
    args = server["spec"]["template"]["spec"]["containers"][0].get("args", [])
    allowed = int(next((a.split("=")[1] for a in args if a.startswith("max_connections=")), 100))
    assert pods * (pool + pool // 2) <= allowed - 3, (pods, pool, allowed)  # 3 kept for superusers


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nats_keeps_jetstream_on_volumes_one_server_on_kind_a_cluster_of_three_in_production(
        rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    assert nats_problems(mesh_of(objs), objs) == []
    assert config_value(objs, "SAGASHOP_NATS_URL") == "nats://nats:4222"
    server = named(objs, "StatefulSet", "nats")
    assert server is not None
    production = overlay == "production"
    assert server["spec"]["replicas"] == (3 if production else 1)
    claim = server["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    assert claim == ("10Gi" if production else "1Gi")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_notification_alone_sends_email_through_the_secret_s_url_to_a_server_it_may_reach(
        rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    assert mail_problems(mesh_of(objs), objs, ROOT / "deploy" / "k8s" / "overlays" / overlay) == []
    given = {part_of(d) for d in of_kind(objs, "Deployment")
             if part_of(d) and VARIABLE in environment(d["spec"]["template"]["spec"]["containers"][0], objs)}
    assert given == {"notification"}
    sinks = [d["metadata"]["name"] for d in running(objs, MAILPIT_IMAGE)]
    if overlay == "production":  # your mail server, named in the Secret you create
        assert sinks == [] and of_kind(objs, "Secret") == []
    else:
        (secret,) = of_kind(objs, "Secret")
        assert sinks == ["mailpit"]
        assert secret_value(objs, secret["metadata"]["name"], "smtp-url") == "smtp://mailpit:1025"
