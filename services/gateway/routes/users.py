"""Accounts and access tokens."""

from fastapi import APIRouter, Request

from sagashop.v1 import user_pb2

from ..deps import Backends, CurrentUser, SignInLimit, TokenIssuer
from ..problems import responses
from ..schemas import Credentials, Me, NewUser, TokenOut, UserOut
from . import READ_WITHIN

PASSWORD_CALL_TIMEOUT = 10.0  # hashing a password is deliberately slow, and queues under load

router = APIRouter(tags=["users"])


@router.post("/users", status_code=201, responses=responses(409))
async def create_user(body: NewUser, b: Backends, limits: SignInLimit, request: Request) -> UserOut:
    await limits.take(request.scope, body.email)
    user = await b.user.call(b.user.stub.CreateUser, user_pb2.CreateUserRequest(
        email=body.email, password=body.password, name=body.name), timeout=PASSWORD_CALL_TIMEOUT)
    return UserOut(id=user.id, email=user.email, name=user.name)


@router.post("/auth/token", responses=responses(401))
async def issue_token(body: Credentials, b: Backends, tokens: TokenIssuer, limits: SignInLimit,
                      request: Request) -> TokenOut:
    await limits.take(request.scope, body.email)
    user = await b.user.call(b.user.stub.Authenticate, user_pb2.AuthenticateRequest(
        email=body.email, password=body.password), within=READ_WITHIN, timeout=PASSWORD_CALL_TIMEOUT)
    return TokenOut(access_token=tokens.issue(user.id, list(user.roles)), expires_in=tokens.ttl)


@router.get("/users/me", responses=responses(401, 404))
async def me(user: CurrentUser, b: Backends) -> Me:
    found = await b.user.call(b.user.stub.GetUser, user_pb2.GetUserRequest(id=user.user_id), within=READ_WITHIN)
    return Me(id=found.id, email=found.email, name=found.name, roles=list(found.roles))
