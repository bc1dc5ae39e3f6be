"""The cluster's side of a canary, through kubectl: a part's live VirtualService, the ConfigMap the orchestrators read
their canary weights from, and the ready pods of a part's v2.

A change is a patch of exactly what the command means to change, never a whole object: a JSON patch whose `test`
operations check the values it was computed from, so an edit made meanwhile makes it fail instead of being
overwritten, and a merge patch of one ConfigMap key, which leaves the other parts' keys alone.
"""

import json
import shutil
import subprocess
from typing import Any

NAMESPACE = "sagashop"
CONFIGMAP = "sagashop-canary"  # data: {<part>: "<v2 percent>"}, mounted into the orchestrators
KUBECTL_TIMEOUT = 60.0  # seconds for one kubectl command
Obj = dict[str, Any]


class CanaryError(Exception):
    """A request the files or the cluster cannot satisfy; the command exits with code 2 and this message."""


def kubectl(*args: str, context: str | None = None, stdin: str | None = None) -> str:
    if shutil.which("kubectl") is None:
        raise CanaryError("kubectl is not on PATH")
    command = ["kubectl", *(["--context", context] if context else []), *args]
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False,
                              timeout=KUBECTL_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise CanaryError(f"{' '.join(command)} did not answer within {KUBECTL_TIMEOUT:.0f}s") from e
    if done.returncode != 0:
        raise CanaryError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


def get(kind: str, name: str | None, context: str | None) -> Obj | None:
    """One object of the namespace (None when it does not exist), or without a name the list of that kind."""
    found = kubectl("get", kind, *([name] if name else []), "-n", NAMESPACE, "-o", "json", "--ignore-not-found",
                    context=context)
    return json.loads(found) if found.strip() else None


def ready_replicas(part: str, context: str | None) -> int:
    """Ready pods of Deployment <part>-v2; 0 when there is no such Deployment."""
    deployment = get("deployment", f"{part}-v2", context) or {}
    return int(deployment.get("status", {}).get("readyReplicas", 0))


def virtual_service(part: str, context: str | None) -> Obj:
    found = get("virtualservice", part, context)
    if found is None:
        raise CanaryError(f"no VirtualService {part} in namespace {NAMESPACE}: apply istio/ first")
    return found


def configmap_weights(context: str | None) -> dict[str, str] | None:
    """The data of the canary ConfigMap, or None when the cluster has none."""
    found = get("configmap", CONFIGMAP, context)
    return None if found is None else dict(found.get("data") or {})


def patch_json(kind: str, name: str, operations: list[Obj], context: str | None) -> None:
    try:
        kubectl("patch", kind, name, "-n", NAMESPACE, "--type", "json", "-p", json.dumps(operations), context=context)
    except CanaryError as e:
        raise CanaryError(f"{kind}/{name} is unchanged (if it was edited meanwhile, run the command again): {e}") from e


def patch_configmap_weight(part: str, percent: int, context: str | None) -> None:
    kubectl("patch", "configmap", CONFIGMAP, "-n", NAMESPACE, "--type", "merge",
            "-p", json.dumps({"data": {part: str(percent)}}), context=context)
