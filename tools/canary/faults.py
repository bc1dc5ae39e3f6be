"""`sagashop canary fault`: Istio fault injection on a part's own VirtualService, keeping its pins and weights.

A fault is added to the routes the VirtualService has; nothing replaces it, so the `x-sagashop-route` header routes
and the default route's canary weights stay as they are. Without a method every route gains the `fault`. With a
method, each route gets a copy of itself (named <route>-fault) placed before the original routes: the copy matches
the gRPC path /sagashop.v1.<Service>/<Method> as well (the uri is added to each of its match entries, so it ANDs with
the header), and carries the fault. Every other method then finds the original routes, unchanged; the first two
routes still pin v2 then v1, and the last is still the default route. `clear` removes exactly that: the copies, and
the `fault` of every route.
"""

import copy
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from .files import edit, file_of, split_routes, virtual_service_in
from .kube import CanaryError, Obj, patch_json, virtual_service

COPY_SUFFIX = "-fault"  # the name of a route's copy that carries a fault limited to one method
GRPC_STATUSES = tuple(code.name for code in grpc.StatusCode if code is not grpc.StatusCode.OK)


@dataclass(frozen=True)
class Fault:
    spec: Obj  # the routes' `fault`: {"abort": {...}} or {"delay": {...}}
    path: str | None  # the gRPC path /package.Service/Method it is limited to; None: every call
    says: str  # what it does, for the user


def abort(part: str, percent: float, status: str | None, method: str | None) -> Fault:
    """Fails PERCENT of the calls with a gRPC status (for the gateway, which speaks HTTP: an HTTP status)."""
    if part == "gateway":
        shown = status or "503"
        if not shown.isdigit() or not 400 <= int(shown) <= 599:
            raise CanaryError(f"the gateway speaks HTTP: --status must be an HTTP error status 400..599, not {shown!r}")
        answer: Obj = {"httpStatus": int(shown)}
    else:
        shown = (status or "UNAVAILABLE").upper()
        if shown not in GRPC_STATUSES:
            raise CanaryError(f"unknown gRPC status {status!r}: expected one of {', '.join(GRPC_STATUSES)}")
        answer = {"grpcStatus": shown}
    path = grpc_path(part, method)
    return Fault({"abort": {**answer, "percentage": percentage(percent)}}, path,
                 f"abort {shown} on {percent:g}% of {path or 'every call'}")


def delay(part: str, percent: float, seconds: float, method: str | None) -> Fault:
    """Holds PERCENT of the calls for that long before passing them on."""
    milliseconds = round(seconds * 1000)
    if milliseconds < 1:
        raise CanaryError(f"the delay must be 1ms or more, not {seconds:g}s")
    fixed = f"{milliseconds / 1000:.3f}".rstrip("0").rstrip(".") + "s"  # protobuf's duration: seconds, 3 decimals
    path = grpc_path(part, method)
    return Fault({"delay": {"fixedDelay": fixed, "percentage": percentage(percent)}}, path,
                 f"delay {fixed} on {percent:g}% of {path or 'every call'}")


def percentage(percent: float) -> Obj:
    if not 0 <= percent <= 100:
        raise CanaryError(f"--percent must be within 0..100, not {percent:g}")
    return {"value": int(percent) if float(percent).is_integer() else percent}


def grpc_path(part: str, method: str | None) -> str | None:
    """The gRPC path of the part's method, read from its generated stubs; an unknown method is refused."""
    if method is None:
        return None
    if part == "gateway":
        raise CanaryError("the gateway speaks HTTP: --method names a gRPC method of one of the other parts")
    stubs = importlib.import_module(f"sagashop.v1.{part}_pb2")
    service = stubs.DESCRIPTOR.services_by_name[f"{part.capitalize()}Service"]
    if method not in service.methods_by_name:
        raise CanaryError(f"{service.full_name} has no method {method!r}: "
                          f"expected one of {', '.join(service.methods_by_name)}")
    return f"/{service.full_name}/{method}"


def is_copy(route: Any) -> bool:
    return "fault" in route and str(route.get("name", "")).endswith(COPY_SUFFIX)


def add(vs: Any, fault: Fault) -> None:
    """Adds the fault to the VirtualService in place (a ruamel document or a plain dict)."""
    routes = vs["spec"]["http"]
    if any("fault" in route for route in routes):
        name = vs["metadata"]["name"]
        raise CanaryError(f"VirtualService {name} has a fault already: `sagashop canary fault {name} clear` first")
    split_routes(vs)  # a VirtualService laid out for canaries, or a clear refusal
    if fault.path is None:
        for route in routes:
            route["fault"] = copy.deepcopy(fault.spec)
        return
    copies = []
    for twin in (copy.deepcopy(route) for route in routes):  # copies: a document must not alias a node
        copies.append({"name": f"{twin.get('name', 'route')}{COPY_SUFFIX}",
                       "match": [{**entry, "uri": {"exact": fault.path}} for entry in twin.get("match") or [{}]],
                       **{key: value for key, value in twin.items() if key not in ("name", "match")},
                       "fault": copy.deepcopy(fault.spec)})
    for i, faulted in enumerate(copies):
        routes.insert(i, faulted)


def clear(vs: Any) -> bool:
    """Removes what `add` added; whether there was anything to remove."""
    routes = vs["spec"]["http"]
    found = any("fault" in route for route in routes)
    for i in reversed(range(len(routes))):
        if is_copy(routes[i]):
            del routes[i]
        else:
            routes[i].pop("fault", None)
    return found


def in_file(part: str, istio_dir: Path, change: Callable[[Any], Any]) -> tuple[Path, str]:
    """The part's file and its text once changed, to be written when the cluster (if asked) took the change too."""
    path = file_of(part, istio_dir)
    return path, edit(path, lambda docs: change(virtual_service_in(docs, path)))[1]


def in_cluster(part: str, context: str | None, change: Callable[[Any], Any]) -> None:
    """Changes the live VirtualService's routes with a JSON patch that first tests they are still those it read."""
    live = virtual_service(part, context)
    before = copy.deepcopy(live["spec"]["http"])
    change(live)
    patch_json("virtualservice", part, [{"op": "test", "path": "/spec/http", "value": before},
                                        {"op": "replace", "path": "/spec/http", "value": live["spec"]["http"]}],
               context)
