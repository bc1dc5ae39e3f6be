"""Failure injection across the shop (only while SAGASHOP_FAULTS_ENABLED is true; 404 otherwise)."""

import asyncio

from fastapi import APIRouter

from sagashop.v1 import common_pb2, faults_pb2

from ..deps import AdminUser, Backends
from ..problems import responses
from ..schemas import Fault, FaultIn, FaultList
from . import READ_WITHIN

router = APIRouter(tags=["faults"], responses=responses(401, 403))


def fault_out(service: str, rule: faults_pb2.FaultRule) -> Fault:
    return Fault(service=service, id=rule.id, method=rule.method, error=rule.error or None, rate=rule.rate,
                 count=rule.count if rule.HasField("count") else None, delay_ms=rule.delay_ms,
                 after_commit=rule.after_commit, crash=rule.crash or None, fired=rule.fired)


@router.put("/admin/faults")
async def add_fault(body: FaultIn, admin: AdminUser, b: Backends) -> Fault:
    """Adds a rule to one service: `method` is one of its gRPC methods (for the orchestrator also a saga step,
    with `crash`), `error` a gRPC status name or null for delay only."""
    rule = faults_pb2.FaultRule(method=body.method, error=body.error or "", rate=body.rate, count=body.count,
                                delay_ms=body.delay_ms, after_commit=body.after_commit, crash=body.crash or "")
    dep = b.deps[body.service]
    return fault_out(body.service, await dep.call(dep.faults.AddFault, rule))


@router.get("/admin/faults")
async def list_faults(admin: AdminUser, b: Backends) -> FaultList:
    return await _each(b, "ListFaults")


@router.delete("/admin/faults")
async def clear_faults(admin: AdminUser, b: Backends) -> FaultList:
    return await _each(b, "ClearFaults")


async def _each(b: Backends, method: str) -> FaultList:
    names = list(b.deps)
    replies = await asyncio.gather(*(b.deps[name].call(getattr(b.deps[name].faults, method), common_pb2.Empty(),
                                                       within=READ_WITHIN) for name in names))
    return FaultList(items=[fault_out(name, rule) for name, reply in zip(names, replies, strict=True)
                            for rule in reply.items])
