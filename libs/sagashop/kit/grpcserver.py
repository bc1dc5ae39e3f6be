"""One way to run a gRPC server: interceptors, health, reflection, and a drain on SIGTERM."""

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sagashop.v1 import faults_pb2, faults_pb2_grpc

from . import metrics
from .callers import Callers
from .faults import FaultRules
from .interceptors import ServiceEdge
from .settings import Settings

log = logging.getLogger(__name__)
AddFn = Callable[[Any, grpc.aio.Server], None]


FAULTS = faults_pb2.DESCRIPTOR.services_by_name["FaultService"].full_name


def methods_of(*service_names: str) -> list[str]:
    pool = descriptor_pool.Default()
    return [m.name for name in service_names for m in pool.FindServiceByName(name).methods]


async def start(
    *services: tuple[AddFn, object, str], host: str, port: int, served_by: str, callers: Callers,
    faults: FaultRules | None = None,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Starts a server for (add_to_server, servicer, full service name) triples; returns it with its bound port.
    Only `callers` get past health checks; with `faults`, their rules apply to every call and FaultService
    manages them."""
    server = grpc.aio.server(interceptors=[callers, ServiceEdge(served_by, faults)])
    status = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(status, server)
    names = [health.SERVICE_NAME, reflection.SERVICE_NAME]
    if faults is not None:
        services = (*services, (faults_pb2_grpc.add_FaultServiceServicer_to_server, faults, FAULTS))
    for add_to_server, servicer, name in services:
        add_to_server(servicer, server)
        names.append(name)
    reflection.enable_server_reflection(names, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    for name in ("", *names):
        await status.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, bound, status


def fault_rules(settings: Settings, *service_names: str, extra: tuple[str, ...] = ()) -> FaultRules | None:
    """The fault rules of a part serving these services, or None where faults are disabled."""
    if not settings.faults_enabled:
        return None
    return FaultRules((*methods_of(*service_names), *extra), settings.faults_seed)


async def serve(settings: Settings, part: str, *services: tuple[AddFn, object, str],
                faults: FaultRules | None = None, grace: float = 5.0) -> None:
    """Runs `part` until SIGTERM/SIGINT, then reports NOT_SERVING (so no new calls are routed here) and lets the
    calls in flight finish within `grace` seconds. Fault rules default to ones for the services served."""
    faults = faults or fault_rules(settings, *(name for _, _, name in services))
    metrics.install(settings)
    host, port, served_by = settings.bind, settings.port(part), f"{part}@{settings.version}"
    secret = settings.caller_secret()
    if secret is None:
        log.warning("SAGASHOP_INTERNAL_SECRET is not set: %s refuses every call but health checks", served_by)
    server, bound, status = await start(*services, host=host, port=port, served_by=served_by,
                                        callers=Callers(secret), faults=faults)
    log.info("%s listening on %s:%d", served_by, host, bound)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("%s draining", served_by)
    await status.enter_graceful_shutdown()
    await server.stop(grace)
