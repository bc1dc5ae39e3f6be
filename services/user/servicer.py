"""UserService: protobuf in and out, one transaction per call, the rules in domain.py. Password hashing runs in
a thread: argon2 is slow on purpose and would stall every other call on the event loop."""

import asyncio
import logging
import secrets
import uuid
from dataclasses import replace

import grpc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sagashop.kit.db import autocommit, transaction
from sagashop.kit.errors import NotFound
from sagashop.v1 import user_pb2 as pb
from sagashop.v1 import user_pb2_grpc

from .domain import (
    CUSTOMER,
    EmailTaken,
    InvalidCredentials,
    User,
    could_have_account,
    hash_password,
    normal_email,
    password_matches,
    valid_email,
    valid_id,
    valid_name,
    valid_password,
    with_admin,
)
from .repository import Users

log = logging.getLogger(__name__)


def user_pb(u: User) -> pb.User:
    return pb.User(id=u.id, email=u.email, name=u.name, roles=list(u.roles))


class UserServicer(user_pb2_grpc.UserServiceServicer):
    def __init__(self, db: AsyncEngine) -> None:
        self.db, self.reads = db, autocommit(db)  # reads: one statement each, no transaction

    async def CreateUser(self, request: pb.CreateUserRequest, context: grpc.aio.ServicerContext) -> pb.User:
        email, name = valid_email(request.email), valid_name(request.name)
        password_hash = await asyncio.to_thread(hash_password, valid_password(request.password))
        user = User(uuid.uuid4().hex, email, name, (CUSTOMER,), password_hash)
        try:
            async with self.db.begin() as conn:
                return user_pb(await Users(conn).add(user))
        except IntegrityError as e:
            raise EmailTaken(f"{email} already has an account") from e

    async def Authenticate(self, request: pb.AuthenticateRequest, context: grpc.aio.ServicerContext) -> pb.User:
        email = normal_email(request.email)
        async with self.reads.connect() as conn:
            found = await Users(conn).by_email(email) if could_have_account(email) else None
        matches = await asyncio.to_thread(password_matches, found.password_hash if found else None, request.password)
        if found is None or not matches:
            raise InvalidCredentials("wrong email or password")
        return user_pb(found)

    async def GetUser(self, request: pb.GetUserRequest, context: grpc.aio.ServicerContext) -> pb.User:
        async with self.reads.connect() as conn:
            if (found := await Users(conn).by_id(valid_id(request.id))) is None:
                raise NotFound(f"no user {request.id!r}")
        return user_pb(found)


async def ensure_admin(db: AsyncEngine, email: str, password: str | None) -> User:
    """Makes sure the admin account exists, holds the admin role and signs in with `password` (None: a new
    random one, logged once so the operator can read it)."""
    if password is None:
        password = secrets.token_urlsafe(12)
        log.warning("admin account %s password %s", email, password)
    password_hash = await asyncio.to_thread(hash_password, password)

    async def work(conn: AsyncConnection) -> User:
        users = Users(conn)
        if (found := await users.by_email(normal_email(email))) is None:
            admin = User(uuid.uuid4().hex, normal_email(email), "Admin", with_admin(()), password_hash)
            return await users.add(admin)  # a replica starting alongside may win: the retry updates its row
        return await users.update(replace(found, roles=with_admin(found.roles), password_hash=password_hash))

    return await transaction(db, work)
