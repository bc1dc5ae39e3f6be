"""The canary's pieces in a rendered overlay, each check returning problems: the weights (the ConfigMap
sagashop-canary, the orchestrator's mount of it, the VirtualServices' default routes) and the in-cluster analysis
(the Job, its ServiceAccount, Role and egress)."""

from sagashop.kit.settings import PARTS

from .env_checks import environment
from .manifests import NAMESPACE, Obj, containers, named, of_kind, part_of, pod_labels, ref, workloads
from .network_checks import egress_admits

WEIGHTS = "sagashop-canary"
WEIGHTS_DIR = "/etc/sagashop/canary"
RUNNER = "canary-runner"
# what `sagashop canary run PART --apply --cluster-only` does with kubectl: reads the Deployments (is <part>-v2
# ready?), gets and patches the VirtualServices (the weights) and the ConfigMap sagashop-canary (the part's key)
RUNNER_RULES = [
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]},
    {"apiGroups": ["networking.istio.io"], "resources": ["virtualservices"], "verbs": ["get", "patch"]},
    {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [WEIGHTS], "verbs": ["get", "patch"]},
]
PROMETHEUS = ({"app.kubernetes.io/name": "prometheus"}, "monitoring", 9090)
API_PORTS = (443, 6443)  # the Service `kubernetes`, and the API server's own port behind it on kind


def default_weights(vs: Obj) -> dict[str, int]:
    last = (vs["spec"].get("http") or [{}])[-1]
    return {d["destination"].get("subset", ""): d.get("weight", 0) for d in last.get("route", [])}


def weight_problems(objs: list[Obj]) -> list[str]:
    """Every part has a key in sagashop-canary equal to the v2 weight of its VirtualService's default route."""
    config = named(objs, "ConfigMap", WEIGHTS)
    if config is None:
        return [f"no ConfigMap {WEIGHTS} (istio/canary-weights.yaml)"]
    problems = []
    for part in PARTS:
        vs, value = named(objs, "VirtualService", part), config.get("data", {}).get(part)
        if value is None or not value.isdigit() or not 0 <= int(value) <= 100:
            problems.append(f"ConfigMap/{WEIGHTS}: {part} must be a percent 0..100, not {value!r}")
        elif vs is not None and default_weights(vs).get("v2") != int(value):
            problems.append(f"ConfigMap/{WEIGHTS}: {part} is {value} but {ref(vs)} sends "
                            f"{default_weights(vs).get('v2')}% to v2")
    return problems


def mount_problems(objs: list[Obj]) -> list[str]:
    """Every orchestrator mounts sagashop-canary (optional) where SAGASHOP_CANARY_WEIGHTS_DIR says."""
    problems = []
    for workload in (w for w in workloads(objs) if part_of(w) == "orchestrator"):
        pod, container = workload["spec"]["template"]["spec"], workload["spec"]["template"]["spec"]["containers"][0]
        volumes = {v["name"]: v.get("configMap", {}) for v in pod.get("volumes", [])}
        mounted = [m for m in container.get("volumeMounts", []) if volumes.get(m["name"], {}).get("name") == WEIGHTS]
        if environment(container, objs).get("SAGASHOP_CANARY_WEIGHTS_DIR") != WEIGHTS_DIR:
            problems.append(f"{ref(workload)}: SAGASHOP_CANARY_WEIGHTS_DIR must be {WEIGHTS_DIR}")
        if [m["mountPath"] for m in mounted] != [WEIGHTS_DIR] or not all(
                volumes[m["name"]].get("optional") is True for m in mounted):
            problems.append(f"{ref(workload)}: must mount ConfigMap {WEIGHTS} (optional) at {WEIGHTS_DIR}")
    return problems


def runner_problems(objs: list[Obj]) -> list[str]:
    """The Role of canary-runner allows exactly what the analysis does, bound to that ServiceAccount alone."""
    if named(objs, "ServiceAccount", RUNNER) is None:
        return []
    role, binding = named(objs, "Role", RUNNER), named(objs, "RoleBinding", RUNNER)
    problems = []
    if role is None or role["rules"] != RUNNER_RULES or role["metadata"].get("namespace") != NAMESPACE:
        problems.append(f"Role/{RUNNER} must allow exactly {RUNNER_RULES} in {NAMESPACE}")
    subjects = [{"kind": "ServiceAccount", "name": RUNNER, "namespace": NAMESPACE}]
    if binding is None or binding["roleRef"] != {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                 "name": RUNNER} or binding.get("subjects") != subjects:
        problems.append(f"RoleBinding/{RUNNER} must bind Role {RUNNER} to ServiceAccount {RUNNER} only")
    if named(objs, "ServiceAccount", RUNNER).get("automountServiceAccountToken") is False:  # type: ignore[union-attr]
        problems.append(f"ServiceAccount/{RUNNER}: kubectl needs its token mounted")
    if any(r["kind"] in ("ClusterRole", "ClusterRoleBinding") for r in objs):
        problems.append("the canary needs no cluster-wide rights")
    return problems


def job_problems(objs: list[Obj]) -> list[str]:
    """Each Job runs the analysis once, bounded in time, as canary-runner, without a sidecar, reaching Prometheus
    and the API server."""
    problems = []
    for job in of_kind(objs, "Job"):
        spec, pod = job["spec"], job["spec"]["template"]["spec"]
        args = [a for c in containers(job) for a in c.get("args", [])]
        once = spec.get("backoffLimit") == 0 and pod.get("restartPolicy") == "Never"
        if not once or not spec.get("activeDeadlineSeconds"):
            problems.append(f"{ref(job)}: needs backoffLimit 0, activeDeadlineSeconds and restartPolicy Never")
        if pod.get("serviceAccountName") != RUNNER:
            problems.append(f"{ref(job)}: must run as ServiceAccount {RUNNER}")
        if args[:2] != ["canary", "run"] or args[2:3] == [] or args[2] not in PARTS or not {
                "--apply", "--cluster-only"} <= set(args):
            problems.append(f"{ref(job)}: must run `canary run PART --apply --cluster-only`, not {args}")
        if pod_labels(job).get("sidecar.istio.io/inject") != "false":
            problems.append(f"{ref(job)}: a sidecar would keep the Job from ending")
        labels = pod_labels(job)
        if not egress_admits(objs, labels, *PROMETHEUS):
            problems.append(f"{ref(job)}: its egress does not reach Prometheus (monitoring:9090)")
        if not all(egress_admits(objs, labels, None, None, port) for port in API_PORTS):
            problems.append(f"{ref(job)}: its egress does not reach the Kubernetes API (443, 6443)")
        if egress_admits(objs, labels, {"app": "payment"}, NAMESPACE, 50054):
            problems.append(f"{ref(job)}: its egress reaches the shop's parts, which it never calls")
    return problems


def canary_problems(objs: list[Obj]) -> list[str]:
    return [*weight_problems(objs), *mount_problems(objs), *runner_problems(objs), *job_problems(objs)]
