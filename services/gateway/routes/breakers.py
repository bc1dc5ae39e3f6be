"""Circuit breakers: the gateway's own (one per backend) and the orchestrator's (one per service it calls)."""

from fastapi import APIRouter

from sagashop.v1 import common_pb2

from ..deps import AdminUser, Backends
from ..problems import responses
from ..schemas import Breaker, BreakerList
from . import READ_WITHIN

router = APIRouter(tags=["admin"], responses=responses(401, 403))


@router.get("/admin/breakers")
async def list_breakers(admin: AdminUser, b: Backends) -> BreakerList:
    own = [Breaker(part="gateway", name=dep.name, state=dep.breaker.state, failures=dep.breaker.failures)
           for dep in b.deps.values()]
    theirs = await b.orchestrator.call(b.orchestrator.stub.ListBreakers, common_pb2.Empty(), within=READ_WITHIN)
    return BreakerList(items=own + [Breaker(part="orchestrator", name=x.name, state=x.state, failures=x.failures)
                                    for x in theirs.items])
