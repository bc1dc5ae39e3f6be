"""What a route can ask for: the backends, the settings, and who is calling. Each is an `async def`: FastAPI runs
a plain `def` dependency on a worker thread, a hand-off that costs more than the little work each one does."""

from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sagashop.backends import Backends as BackendClients
from sagashop.kit.errors import Forbidden, Unauthenticated

from .catalog_cache import CatalogCache
from .events import Broker
from .idempotency import Idempotency
from .limits import SignInLimits
from .tokens import VERIFIED, Principal, Tokens

bearer = HTTPBearer(auto_error=False)


async def backends(request: Request) -> BackendClients:
    return cast(BackendClients, request.app.state.backends)


async def tokens(request: Request) -> Tokens:
    return cast(Tokens, request.app.state.tokens)


TokenIssuer = Annotated[Tokens, Depends(tokens)]


async def broker(request: Request) -> Broker:
    return cast(Broker, request.app.state.broker)


async def catalog_cache(request: Request) -> CatalogCache:
    return cast(CatalogCache, request.app.state.catalog_cache)


async def idempotency(request: Request) -> Idempotency:
    return cast(Idempotency, request.app.state.idempotency)


async def sign_in_limits(request: Request) -> SignInLimits:
    return cast(SignInLimits, request.app.state.sign_in)


SignInLimit = Annotated[SignInLimits, Depends(sign_in_limits)]


async def current_user(request: Request, issuer: TokenIssuer,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    if credentials is None:
        raise Unauthenticated("an Authorization: Bearer token is required")
    if (verified := request.scope.get("state", {}).get(VERIFIED)) is not None:  # by the rate limiter
        return cast(Principal, verified)
    return issuer.verify(credentials.credentials)


async def admin_user(user: Annotated[Principal, Depends(current_user)]) -> Principal:
    if not user.is_admin:
        raise Forbidden("this needs the admin role")
    return user


Backends = Annotated[BackendClients, Depends(backends)]
EventBroker = Annotated[Broker, Depends(broker)]
Catalog = Annotated[CatalogCache, Depends(catalog_cache)]
IdempotencyKeys = Annotated[Idempotency, Depends(idempotency)]
CurrentUser = Annotated[Principal, Depends(current_user)]
AdminUser = Annotated[Principal, Depends(admin_user)]
