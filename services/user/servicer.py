"""UserService: protobuf in and out, one transaction per call, the rules in domain.py. Password hashing runs in
a thread, as argon2 is slow on purpose and would stall every other call on the event loop, and is bounded: each
hash takes ~30 ms of CPU and ~19 MiB, so at most one per usable CPU runs at once and a few more wait; beyond, a
sign-up or login is refused at once (429 at the gateway) rather than queued until the pod runs out of memory."""

import asyncio
import logging
import secrets
import uuid
from dataclasses import replace

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from sagashop.kit.bounded import Bounded, usable_cpus
from sagashop.kit.db import Database
from sagashop.kit.errors import NotFound
from sagashop.kit.status import ServerContext
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
    def __init__(self, db: Database, hashing: Bounded | None = None) -> None:
        self.db = db
        cpus = usable_cpus()
        self.hashing = hashing or Bounded("password checks", at_once=cpus, waiting=4 * cpus)

    async def CreateUser(self, request: pb.CreateUserRequest, context: ServerContext) -> pb.User:
        email, name = valid_email(request.email), valid_name(request.name)
        password_hash = await self.hashing.run(hash_password, valid_password(request.password))
        user = User(uuid.uuid4().hex, email, name, (CUSTOMER,), password_hash)
        try:  # the unique index decides between two racing sign-ups: no second try
            return user_pb(await self.db.transaction(lambda conn: Users(conn).add(user), tries=1))
        except IntegrityError as e:
            raise EmailTaken(f"{email} already has an account") from e

    async def Authenticate(self, request: pb.AuthenticateRequest, context: ServerContext) -> pb.User:
        email = normal_email(request.email)
        found = None
        if could_have_account(email):
            found = await self.db.autocommit(lambda conn: Users(conn).by_email(email))
        matches = await self.hashing.run(password_matches, found.password_hash if found else None, request.password)
        if found is None or not matches:
            raise InvalidCredentials("wrong email or password")
        return user_pb(found)

    async def GetUser(self, request: pb.GetUserRequest, context: ServerContext) -> pb.User:
        user_id = valid_id(request.id)
        if (found := await self.db.autocommit(lambda conn: Users(conn).by_id(user_id))) is None:
            raise NotFound(f"no user {request.id!r}")
        return user_pb(found)


async def ensure_admin(db: Database, email: str, password: str | None) -> User:
    """Makes sure the admin account exists, holds the admin role and signs in with `password`. None (unset): an
    existing admin keeps its password, a new one gets a random one nobody is told; a password is never logged."""
    if password is None:
        log.warning("admin account %s: SAGASHOP_ADMIN_PASSWORD is not set, its password is left as it is (a new "
                    "account's is random and told to no one); set it to sign in as the admin", email)
    password_hash = await asyncio.to_thread(hash_password, password or secrets.token_urlsafe(32))

    def work(conn: Connection) -> User:
        users = Users(conn)
        if (found := users.by_email(normal_email(email))) is None:
            admin = User(uuid.uuid4().hex, normal_email(email), "Admin", with_admin(()), password_hash)
            return users.add(admin)  # a replica starting alongside may win: the retry updates its row
        kept = found.password_hash if password is None else password_hash
        return users.update(replace(found, roles=with_admin(found.roles), password_hash=kept))

    return await db.transaction(work)
