"""The notification service's mail server, each check returning problems:

    notification --SAGASHOP_SMTP_URL (Secret sagashop-secrets, key smtp-url)--> a mail server

the URL comes from the Secret (a mail server's URL may carry its password); where the overlay renders that Secret
(kind), it is an smtp:// or smtps:// URL and, when it names a Service of the namespace (the mail sink of
components/mailsink), that Service's port is declared TCP (the server speaks first, which Istio's protocol sniffing
would wait on) and leads to the pods' SMTP port past the network policies and the mesh; where the Secret is made
outside the overlay (production), the overlay says how to make its key. A mail server outside the namespace is not
in the tree to check.
"""

import base64
import re
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from .env_checks import environment
from .manifests import Obj, local_service, named, part_of, protocol, ref, service_port, workloads
from .mesh_checks import kept_from
from .tracing_checks import main_container

VARIABLE = "SAGASHOP_SMTP_URL"
SECRET, KEY = "sagashop-secrets", "smtp-url"
GENERATED = re.compile(rf"^{SECRET}(-[a-z0-9]{{10}})?$")  # a generator's copy carries a hash of its content
SCHEMES = {"smtp": 25, "smtps": 465}  # each scheme's port when the URL names none


def secret_value(objs: list[Obj], name: str, key: str) -> str | None:
    """A key of a Secret the tree renders (kustomize writes `data`, base64), or None."""
    secret = named(objs, "Secret", name) or {}
    if key in secret.get("stringData", {}):
        return str(secret["stringData"][key])
    data = secret.get("data", {}).get(key)
    return base64.b64decode(data).decode() if data is not None else None


def reach_problems(mesh: list[Obj], objs: list[Obj], sender: Obj, url: SplitResult, what: str) -> list[str]:
    if url.scheme not in SCHEMES or not url.hostname:
        return [f"{what}: {url.scheme}://{url.hostname} is no smtp:// or smtps:// URL with a host"]
    service = local_service(url.hostname)
    if service is None:
        return []
    number = url.port or SCHEMES[url.scheme]
    port = service_port(objs, service, number)
    if port is None:
        return [f"{what}: {url.hostname}:{number} is no Service port"]
    if protocol(port) != "tcp":
        return [f"{what}: Service {service} port {port.get('name')} speaks {protocol(port)}, not tcp: an SMTP server "
                "speaks first, which Istio's protocol sniffing would wait on"]
    return [f"{what}: the network policies or the mesh keep it from {blocked}"
            for blocked in kept_from(mesh, objs, sender, service, port)]


def mail_problems(mesh: list[Obj], objs: list[Obj], overlay_dir: Path | None = None) -> list[str]:
    """Every part given SAGASHOP_SMTP_URL (env_checks tells who must and who must not) takes it from the Secret's key
    smtp-url, which leads to a mail server it may reach (or, made outside the overlay, is documented there)."""
    problems = []
    for workload in (w for w in workloads(objs) if part_of(w)):
        given = environment(main_container(workload), objs).get(VARIABLE)
        if given is None:
            continue
        what = f"{ref(workload)}: {VARIABLE}"
        source = given.get("secretKeyRef", {}) if isinstance(given, dict) else {}
        name = str(source.get("name", ""))
        if not GENERATED.match(name) or source.get("key") != KEY:
            problems.append(f"{what} must come from the Secret {SECRET}, key {KEY} (a mail server's URL may carry its "
                            "password)")
        elif named(objs, "Secret", name) is None:
            documented = overlay_dir is None or re.search(
                rf"--from-literal={KEY}=", (overlay_dir / "kustomization.yaml").read_text())
            if not documented:
                problems.append(f"{what}: the overlay does not say how to create the key {KEY} of the Secret "
                                f"{SECRET} (--from-literal={KEY}=...)")
        elif (url := secret_value(objs, name, KEY)) is not None:  # a missing key: reference_problems tells
            problems += reach_problems(mesh, objs, workload, urlsplit(url), what)
    return problems
