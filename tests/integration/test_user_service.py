import asyncio
import logging

import pytest

from sagashop.kit.db import database
from sagashop.kit.errors import Conflict, Invalid, NotFound, Unauthenticated
from sagashop.v1 import user_pb2 as pb
from sagashop.v1 import user_pb2_grpc
from services.user.main import SERVICE
from services.user.servicer import UserServicer, ensure_admin

SLOW = 30.0  # seconds: argon2 is slow on purpose, and concurrent sign-ups queue for the CPU


@pytest.fixture
async def users(grpc_service):
    return await grpc_service("user", user_pb2_grpc.add_UserServiceServicer_to_server, UserServicer,
                              user_pb2_grpc.UserServiceStub, SERVICE)


@pytest.fixture
async def user_db(settings):
    """The user service's own database, as `sagashop serve user` opens it at start."""
    db = await database(settings, "user")
    yield db
    await db.dispose()


async def sign_up(users, email: str, password: str = "correct horse", name: str = "Ada") -> pb.User:
    request = pb.CreateUserRequest(email=email, password=password, name=name)
    return await users.call(users.stub.CreateUser, request, timeout=SLOW)


async def sign_in(users, email: str, password: str) -> pb.User:
    return await users.call(users.stub.Authenticate, pb.AuthenticateRequest(email=email, password=password),
                            timeout=SLOW)


async def test_a_new_account_is_a_customer_that_signs_in_with_its_password(users):
    created = await sign_up(users, "Ada@Example.com")
    assert (created.email, created.name, list(created.roles)) == ("ada@example.com", "Ada", ["customer"])

    signed_in = await sign_in(users, "ADA@example.com", "correct horse")
    found = await users.call(users.stub.GetUser, pb.GetUserRequest(id=created.id))
    assert signed_in == found == created


async def test_an_email_is_taken_whatever_its_case(users):
    await sign_up(users, "ada@example.com")
    with pytest.raises(Conflict) as taken:
        await sign_up(users, "Ada@EXAMPLE.com", name="Other Ada")
    assert taken.value.code == "email_taken"


async def test_a_wrong_password_and_an_unknown_email_get_the_same_refusal(users):
    await sign_up(users, "ada@example.com")
    for email, password in (("ada@example.com", "wrong horse"), ("bob@example.com", "correct horse")):
        with pytest.raises(Unauthenticated) as refused:
            await sign_in(users, email, password)
        assert refused.value.code == "invalid_credentials"


@pytest.mark.parametrize("email, password, name", [
    ("not-an-email", "correct horse", "Ada"),
    ("ada@example.com", "short", "Ada"),
    ("ada@example.com", "x" * 257, "Ada"),
    ("ada@example.com", "correct horse", "   "),
    ("ada@example.com", "correct horse", "A" * 201),
])
async def test_bad_sign_ups_are_refused_as_validation_errors(users, email, password, name):
    with pytest.raises(Invalid) as refused:
        await sign_up(users, email, password, name)
    assert refused.value.code == "validation_error"


async def test_an_unknown_user_is_not_found(users):
    with pytest.raises(NotFound):
        await users.call(users.stub.GetUser, pb.GetUserRequest(id="nope"))


async def test_concurrent_sign_ups_with_one_email_create_exactly_one_account(users):
    outcomes = await asyncio.gather(*(sign_up(users, "ada@example.com", name=f"Ada {i}") for i in range(10)),
                                    return_exceptions=True)
    assert sum(isinstance(o, pb.User) for o in outcomes) == 1
    assert all(isinstance(o, pb.User) or getattr(o, "code", "") == "email_taken" for o in outcomes)


async def test_the_admin_is_created_as_admin_and_its_password_is_reset_on_each_start(users, user_db):
    first = await ensure_admin(user_db, "Admin@Shop.example", "first password")
    assert (first.email, first.roles) == ("admin@shop.example", ("admin", "customer"))

    again = await ensure_admin(user_db, "admin@shop.example", "second password")
    assert again.id == first.id
    with pytest.raises(Unauthenticated):
        await sign_in(users, "admin@shop.example", "first password")
    signed_in = await sign_in(users, "admin@shop.example", "second password")
    assert list(signed_in.roles) == ["admin", "customer"]


async def test_an_existing_customer_named_admin_keeps_its_account_and_gains_the_admin_role(users, user_db):
    customer = await sign_up(users, "boss@example.com")
    admin = await ensure_admin(user_db, "boss@example.com", "admin password")
    assert (admin.id, admin.name, admin.roles) == (customer.id, "Ada", ("admin", "customer"))


async def test_without_a_configured_password_the_admin_keeps_its_own_and_no_password_is_ever_logged(
        users, user_db, caplog):
    with caplog.at_level(logging.DEBUG):
        await ensure_admin(user_db, "admin@sagashop.local", "first password")
        await ensure_admin(user_db, "admin@sagashop.local", None)
        await ensure_admin(user_db, "new-admin@sagashop.local", None)  # a random one, told to no one
    assert list((await sign_in(users, "admin@sagashop.local", "first password")).roles) == ["admin", "customer"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w.split(":")[0] for w in warnings] == ["admin account admin@sagashop.local",
                                                   "admin account new-admin@sagashop.local"]
    assert all("SAGASHOP_ADMIN_PASSWORD is not set" in w and "first password" not in w for w in warnings)
