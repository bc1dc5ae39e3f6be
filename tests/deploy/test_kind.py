"""`make kind-up` as far as it can be checked without docker: the version and resource checks of up.sh (with
stand-ins for docker, kind, kubectl and istioctl), the image tag, the stack it applies (overlay + monitoring) and
what it asks of the node, the way in at 127.0.0.1:8080, and shellcheck over the scripts."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sagashop.kit.settings import PARTS
from tests.conftest import missing
from tools.kind import smoke, stack

from .manifests import ROOT, Obj, container_ports, kubectl_or_skip, named, of_kind, pod_labels, workloads
from .network_checks import admits
from .schema_checks import kubernetes_problems
from .workload_checks import image_problems, probe_problems, security_problems, service_problems

KIND = ROOT / "deploy" / "kind"
SCRIPTS = [KIND / "up.sh", KIND / "down.sh", KIND / "lib.sh"]
GIB = 1024**3
LAPTOP = "4 8589934592"  # a Docker VM of 4 CPUs and 8 GiB
FAKE = {  # what each stand-in prints for its version (kubectl hands every other command to the real one)
    "docker": 'echo "${FAKE_DOCKER:-' + LAPTOP + '}"',
    "kind": 'echo "kind v${FAKE_KIND:-0.33.0} go1.25.1 linux/amd64"',
    "istioctl": 'echo "client version: ${FAKE_ISTIOCTL:-1.30.4}"',
    "kubectl": 'if [ "$1" = version ]; then echo "Client Version: v${FAKE_KUBECTL:-1.35.0}"; exit 0; fi\n'
               'exec {real} "$@"',
}




@pytest.fixture(scope="module")
def rendered_stacks() -> dict[str, list[Obj]]:
    kubectl_or_skip()
    return {o: [d for d in yaml.safe_load_all(stack.render(o, "abc123")) if d] for o in ("kind", "kind-canary")}


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    """A directory of stand-ins, put first on PATH; remove one to play a missing tool."""
    real = kubectl_or_skip()
    for name, body in FAKE.items():
        script = tmp_path / name
        script.write_text("#!/bin/sh\n" + body.replace("{real}", real) + "\n")
        script.chmod(0o755)
    return tmp_path


def up_check(tools: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = f"{tools}:/usr/local/bin:/usr/bin:/bin"  # no docker, kind or istioctl but the stand-ins
    return subprocess.run([str(KIND / "up.sh"), "--check"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": path, "FORCE": "0", **env}, check=False)


def test_up_check_accepts_current_tools_and_says_the_overlay_fits(tools: Path) -> None:
    done = up_check(tools)
    assert done.returncode == 0, done.stderr
    assert "Docker has 4 CPUs and 8.0 GiB: it fits" in done.stdout


@pytest.mark.parametrize(("variable", "version", "told"), [
    ("FAKE_ISTIOCTL", "1.24.2", "istioctl 1.24.2 is not supported here: Istio 1.30 to 1.31 is"),
    ("FAKE_ISTIOCTL", "1.32.0", "istioctl 1.32.0 is not supported here"),
    ("FAKE_KIND", "0.27.0", "kind 0.27.0 is too old: v0.33.0 or newer"),
    ("FAKE_KUBECTL", "1.32.2", "kubectl 1.32.2 is too old for the Kubernetes 1.35 node"),
])
def test_up_check_refuses_a_tool_outside_its_versions(tools: Path, variable: str, version: str, told: str) -> None:
    done = up_check(tools, **{variable: version})
    assert done.returncode == 1
    assert told in done.stderr


def test_up_check_names_a_missing_tool_and_where_to_get_it(tools: Path) -> None:
    (tools / "istioctl").unlink()
    if shutil.which("istioctl", path="/usr/local/bin:/usr/bin:/bin"):
        pytest.skip("istioctl is installed on this machine")
    done = up_check(tools)
    assert done.returncode == 1
    assert "istioctl is not installed (curl -L https://istio.io/downloadIstio | ISTIO_VERSION=1.30" in done.stderr


def test_up_check_refuses_a_docker_too_small_unless_forced(tools: Path) -> None:
    small = "2 4294967296"
    refused = up_check(tools, FAKE_DOCKER=small)
    assert refused.returncode == 1
    assert "Docker has 2 CPUs and 4.0 GiB: too little for overlay kind" in refused.stderr
    assert "Settings > Resources" in refused.stderr and "FORCE=1" in refused.stderr
    forced = up_check(tools, FAKE_DOCKER=small, FORCE="1")
    assert forced.returncode == 0, forced.stderr


def image_tag(repo: Path) -> str:
    done = subprocess.run(["bash", "-c", f"set -euo pipefail; source {KIND / 'lib.sh'}; image_tag"], cwd=repo,
                          capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.strip()


def test_the_image_tag_is_the_commit_and_a_digest_of_the_changes(tmp_path: Path) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "app.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "one"], cwd=tmp_path, check=True)
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=tmp_path, capture_output=True,
                            text=True, check=True).stdout.strip()
    assert image_tag(tmp_path) == commit
    (tmp_path / "app.py").write_text("print(2)\n")
    first = image_tag(tmp_path)
    assert re.fullmatch(rf"{commit}-dirty-[0-9a-f]{{12}}", first)
    assert image_tag(tmp_path) == first  # the same changes, the same tag: no needless rollout
    (tmp_path / "new.py").write_text("x = 1\n")  # an untracked file is a change too
    assert image_tag(tmp_path) not in (first, commit)


def test_the_kind_overlay_fits_a_laptop_s_docker_with_room_to_spare(rendered_stacks: dict[str, list[Obj]]) -> None:
    totals = {overlay: stack.totals(overlay) for overlay in rendered_stacks}
    for overlay, groups in totals.items():  # the figures of docs/kubernetes.md
        print(f"\n{overlay}: " + ", ".join(f"{name}: {asked.show()}" for name, asked in groups.items()))
    total = totals["kind"]["total"]
    assert stack.fits(total, 4, 8 * GIB)
    # room to spare below the preflight's 85 %: for the pods' use above their requests and for `kubectl` and image loads
    assert total.cpu <= 0.65 * 4 and total.memory <= 0.5 * 8 * GIB, total
    assert stack.fits(totals["kind-canary"]["total"], 4, 8 * GIB)
    assert not stack.fits(total, 2, 4 * GIB)


def test_a_pod_in_the_mesh_is_counted_with_its_sidecar(rendered_stacks: dict[str, list[Obj]]) -> None:
    _, sidecar = stack.istio(yaml.safe_load((KIND / "istio.yaml").read_text()))
    objs = rendered_stacks["kind"]
    payment, prometheus = named(objs, "Deployment", "payment-v1"), named(objs, "Deployment", "prometheus")
    assert payment and prometheus
    bare = stack.requested(payment["spec"]["template"]["spec"]["containers"][0]["resources"])
    assert stack.pod_requests(payment, sidecar) == bare + sidecar
    assert stack.pod_requests(prometheus, sidecar) == stack.Requests(0.1, 256 * 1024**2)  # no sidecar


def test_the_stack_sets_every_shop_image_to_the_build_and_labels_every_object(
        rendered_stacks: dict[str, list[Obj]]) -> None:
    for objs in rendered_stacks.values():
        shop = [c["image"] for w in workloads(objs) for c in w["spec"]["template"]["spec"]["containers"]
                if c["image"].startswith("sagashop")]
        assert shop and set(shop) == {"sagashop:abc123"}
        assert [o["metadata"]["name"] for o in objs
                if o["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") != "sagashop"] == []


def test_switching_back_from_the_canary_overlay_prunes_what_only_it_has(rendered_stacks: dict[str, list[Obj]]) -> None:
    prunable = {entry.rsplit("/", 1)[1] for entry in
                re.search(r"PRUNABLE=\(([^)]*)\)", (KIND / "up.sh").read_text())[1].split()}  # type: ignore[index]
    kept = {(o["kind"], o["metadata"]["name"]) for o in rendered_stacks["kind"]}
    only_canary = [o for o in rendered_stacks["kind-canary"] if (o["kind"], o["metadata"]["name"]) not in kept]
    assert {o["metadata"]["name"] for o in only_canary} >= {f"{part}-v2" for part in PARTS}
    assert [o["kind"] for o in only_canary if o["kind"] not in prunable] == []
    assert "Namespace" not in prunable and "PersistentVolumeClaim" not in prunable


def monitoring(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if o["metadata"].get("namespace") in ("monitoring", "kube-system")
            or o["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding", "APIService")
            and o["metadata"]["name"] != "sagashop"]


def test_the_monitoring_objects_validate_and_are_locked_down(rendered_stacks: dict[str, list[Obj]]) -> None:
    objs = monitoring(rendered_stacks["kind"])
    assert {w["metadata"]["name"] for w in workloads(objs)} == {"prometheus", "metrics-server"}
    assert kubernetes_problems(objs) == []
    assert image_problems(objs) + security_problems(objs) + service_problems(objs) + probe_problems(objs) == []


def test_prometheus_scrapes_every_part_through_the_network_policies(rendered_stacks: dict[str, list[Obj]]) -> None:
    objs = rendered_stacks["kind"]
    prometheus = named(objs, "Deployment", "prometheus")
    assert prometheus and prometheus["metadata"]["namespace"] == "monitoring"
    shop = [o for o in objs if o["metadata"].get("namespace") == "sagashop"]
    for part in (w for w in workloads(shop) if pod_labels(w)["app"] in PARTS):
        assert admits(shop, pod_labels(part), container_ports(part), pod_labels(prometheus), "monitoring", 15020)
    config = next(c for c in of_kind(objs, "ConfigMap") if c["metadata"]["name"].startswith("prometheus-config"))
    (job,) = yaml.safe_load(config["data"]["prometheus.yml"])["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["sagashop"]}}]
    kept = next(r for r in job["relabel_configs"] if r["source_labels"] == ["__meta_kubernetes_pod_label_app"])
    assert set(kept["regex"].split("|")) == set(PARTS)
    args = prometheus["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--storage.tsdb.retention.time=6h" in args


def test_the_canary_job_s_namespace_reaches_prometheus_and_no_other(rendered_stacks: dict[str, list[Obj]]) -> None:
    objs = monitoring(rendered_stacks["kind"])
    prometheus, service = named(objs, "Deployment", "prometheus"), named(objs, "Service", "prometheus")
    assert prometheus and service and service["metadata"]["namespace"] == "monitoring"
    assert [p["port"] for p in service["spec"]["ports"]] == [9090]  # http://prometheus.monitoring:9090
    labels, ports = pod_labels(prometheus), container_ports(prometheus)
    assert admits(objs, labels, ports, {"app": "canary-runner"}, "sagashop", 9090)
    assert not admits(objs, labels, ports, {"app": "canary-runner"}, "elsewhere", 9090)


def test_metrics_server_serves_the_autoscalers_on_kind(rendered_stacks: dict[str, list[Obj]]) -> None:
    objs = rendered_stacks["kind"]
    server = named(objs, "Deployment", "metrics-server")
    api = named(objs, "APIService", "v1beta1.metrics.k8s.io")
    assert server and api and server["metadata"]["namespace"] == "kube-system"
    assert "--kubelet-insecure-tls" in server["spec"]["template"]["spec"]["containers"][0]["args"]
    assert api["spec"]["service"] == {"name": "metrics-server", "namespace": "kube-system"}


def test_the_ingress_gateway_answers_on_the_host_s_127_0_0_1_8080() -> None:
    cluster = yaml.safe_load((KIND / "cluster.yaml").read_text())
    (node,) = cluster["nodes"]
    (mapping,) = node["extraPortMappings"]
    assert (mapping["hostPort"], mapping["listenAddress"]) == (8080, "127.0.0.1")
    operator = yaml.safe_load((KIND / "istio.yaml").read_text())["spec"]
    (gateway,) = operator["components"]["ingressGateways"]
    service = gateway["k8s"]["service"]
    assert service["type"] == "NodePort"
    http = next(p for p in service["ports"] if p.get("nodePort") == mapping["containerPort"])
    listened = yaml.safe_load_all((ROOT / "istio" / "gateway.yaml").read_text())
    assert http["port"] in {s["port"]["number"] for g in listened if g["kind"] == "Gateway"
                            for s in g["spec"]["servers"]}


def test_the_smoke_check_signs_in_as_the_stack_s_admin(rendered_stacks: dict[str, list[Obj]]) -> None:
    assert smoke.admin_of(yaml.safe_dump_all(rendered_stacks["kind"])) == ("admin@sagashop.local",
                                                                           "dev-only-admin-password")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_finds_nothing_in_the_kind_scripts(script: Path) -> None:
    shellcheck = shutil.which("shellcheck") or missing("shellcheck is not installed", "make shellcheck (as root)")
    done = subprocess.run([shellcheck, "-x", str(script.relative_to(ROOT))], cwd=ROOT, capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stdout
