"""What the parts' pods need from outside the app, each check returning problems: their own PostgreSQL role (made
by the server's init script) on a server they may reach, and a sidecar that outlives the app's drain within the
pod's grace period."""

import inspect
import json
import re
from urllib.parse import urlsplit

from sagashop.kit import grpcserver
from sagashop.kit.settings import SERVICES
from services.gateway.main import DRAIN_SECONDS

from .env_checks import environment
from .manifests import Obj, named, part_of, ref, service_port, workloads
from .mesh_checks import kept_from, seconds

INIT_DIR = "/docker-entrypoint-initdb.d"
PROXY_CONFIG = "proxy.istio.io/config"
# how long each part's app drains once asked to stop: the gateway's uvicorn, and every gRPC part's serve()
APP_DRAIN = {"gateway": float(DRAIN_SECONDS),
             **{s: float(inspect.signature(grpcserver.serve).parameters["grace"].default) for s in SERVICES}}


def role(part: str) -> str:
    return f"sagashop_{part}"


def init_script(objs: list[Obj]) -> tuple[str, dict[str, object]]:
    """The text of the scripts PostgreSQL runs on an empty volume, and its container's environment."""
    server = named(objs, "StatefulSet", "postgres")
    if server is None:
        return "", {}
    spec, container = server["spec"]["template"]["spec"], server["spec"]["template"]["spec"]["containers"][0]
    volumes = {v["name"]: v.get("configMap", {}).get("name") for v in spec.get("volumes", [])}
    mounts = [volumes.get(m["name"]) for m in container.get("volumeMounts", []) if m["mountPath"] == INIT_DIR]
    config = named(objs, "ConfigMap", mounts[0] or "") if mounts else None
    return "\n".join((config or {}).get("data", {}).values()), environment(container, objs)


def database_problems(objs: list[Obj], mesh: list[Obj]) -> list[str]:
    """Each part with a database connects as its own role, with its own password, past the network policies and the
    mesh, and the init script makes that role (from that same password) the owner of the part's schema."""
    script, server_env = init_script(objs)
    if named(objs, "StatefulSet", "postgres") is not None and not script:
        return [f"StatefulSet/postgres: no init script (a ConfigMap) mounted at {INIT_DIR}"]
    made = set(re.findall(r"for part in ([\w ]+); do", script)[0].split()) if "for part in" in script else set()
    problems = []
    for workload in (w for w in workloads(objs) if part_of(w) in SERVICES):
        part, where = str(part_of(workload)), ref(workload)
        env = environment(workload["spec"]["template"]["spec"]["containers"][0], objs)
        url = urlsplit(str(env.get("SAGASHOP_DATABASE_URL") or ""))
        user, port = url.username, service_port(objs, url.hostname or "", url.port or 5432)
        problems += [f"{where}: the network policies or the mesh keep it from {blocked}"
                     for blocked in (kept_from(mesh, objs, workload, str(url.hostname), port) if port else [])]
        if user != role(part):
            problems.append(f"{where}: SAGASHOP_DATABASE_URL must name the role {role(part)}, not {user}")
        password = env.get("PGPASSWORD")
        key = password.get("secretKeyRef", {}).get("key") if isinstance(password, dict) else None
        if key != f"db-password-{part}":
            problems.append(f"{where}: PGPASSWORD must come from the Secret's key db-password-{part}, not {key}")
        given = server_env.get(f"ROLE_PASSWORD_{part.upper()}")
        if part not in made or not isinstance(given, dict) or given.get("secretKeyRef", {}).get("key") != key:
            problems.append(f"{where}: PostgreSQL's init script makes no role {role(part)} with that password")
    return problems


def drain_problems(objs: list[Obj]) -> list[str]:
    """The sidecar stays up longer than the app drains, and both within terminationGracePeriodSeconds."""
    problems = []
    for workload in (w for w in workloads(objs) if part_of(w) in APP_DRAIN):
        template = workload["spec"]["template"]
        config = json.loads(template["metadata"].get("annotations", {}).get(PROXY_CONFIG, "{}"))
        sidecar = seconds(str(config.get("terminationDrainDuration", "")))
        grace, app = template["spec"].get("terminationGracePeriodSeconds", 30), APP_DRAIN[str(part_of(workload))]
        if not app < sidecar < grace:
            problems.append(f"{ref(workload)}: the sidecar's terminationDrainDuration "
                            f"{config.get('terminationDrainDuration')} must outlast the app's drain ({app:g} s) "
                            f"within terminationGracePeriodSeconds ({grace} s)")
        if config.get("holdApplicationUntilProxyStarts") is not True:
            problems.append(f"{ref(workload)}: the app must wait for its sidecar (holdApplicationUntilProxyStarts)")
    return problems
