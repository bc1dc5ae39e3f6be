"""One way to run a gRPC server: interceptors, health, reflection, and a drain on SIGTERM."""

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .interceptors import ServiceEdge

log = logging.getLogger(__name__)
AddFn = Callable[[Any, grpc.aio.Server], None]


async def start(
    *services: tuple[AddFn, object, str], host: str, port: int, served_by: str
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Starts a server for (add_to_server, servicer, full service name) triples; returns it with its bound port."""
    server = grpc.aio.server(interceptors=[ServiceEdge(served_by)])
    status = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(status, server)
    names = [health.SERVICE_NAME, reflection.SERVICE_NAME]
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


async def serve(
    *services: tuple[AddFn, object, str], host: str, port: int, served_by: str, grace: float = 5.0
) -> None:
    """Runs until SIGTERM/SIGINT, then reports NOT_SERVING (so no new calls are routed here) and lets the calls
    in flight finish within `grace` seconds."""
    server, bound, status = await start(*services, host=host, port=port, served_by=served_by)
    log.info("%s listening on %s:%d", served_by, host, bound)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("%s draining", served_by)
    await status.enter_graceful_shutdown()
    await server.stop(grace)
