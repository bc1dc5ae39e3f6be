"""User rules: what a valid account is, which roles it holds, and how its password is kept."""

import secrets
from dataclasses import dataclass, field
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email

from sagashop.kit.errors import Conflict, Invalid, Unauthenticated
from sagashop.values import MAX_EMAIL, MAX_ID, MAX_PASSWORD, MAX_TEXT, MIN_PASSWORD

CUSTOMER, ADMIN = "customer", "admin"
# OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane), not argon2-cffi's heavier default (64 MiB, 3 passes,
# 4 lanes): it still meets the recommendation against offline guessing, and keeps sign-up and login from holding
# every core of a small machine for each hash.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str
    roles: tuple[str, ...]
    password_hash: str = field(repr=False)


class EmailTaken(Conflict):
    code = "email_taken"


class InvalidCredentials(Unauthenticated):
    code = "invalid_credentials"


def _normalized(email: str) -> str:
    """email_validator's form (Unicode NFC, an IDNA domain in Unicode), lowercased so that addresses are unique
    case-insensitively; raises EmailNotValidError for what is not a bare address ("Ada <ada@example.com>" too)."""
    return validate_email(email.strip(), check_deliverability=False).normalized.lower()


def normal_email(email: str) -> str:
    """The one form an address is stored and looked up in, at sign-up and login alike. One email_validator
    refuses (the admin's, set by the operator, may be on a reserved domain such as .local) is only trimmed and
    lowercased: no sign-up can create it, so no two forms of it can exist."""
    try:
        return _normalized(email)
    except EmailNotValidError:
        return email.strip().lower()


def valid_email(email: str) -> str:
    """A new account's address, in its normal form."""
    try:
        return _normalized(email)
    except EmailNotValidError as e:
        raise Invalid(f"email: {e}") from e


def valid_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise Invalid(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def valid_name(name: str) -> str:
    if not name.strip() or len(name) > MAX_TEXT or not name.isprintable():
        raise Invalid(f"name must be 1 to {MAX_TEXT} printable characters")
    return name.strip()


def valid_id(user_id: str) -> str:
    if not 1 <= len(user_id) <= MAX_ID or not user_id.isprintable():
        raise Invalid(f"a user id is 1 to {MAX_ID} printable characters")
    return user_id


def could_have_account(email: str) -> bool:
    """Whether an account may be stored under `email` (one that cannot is not looked for)."""
    return len(email) <= MAX_EMAIL and email.isprintable()


def with_admin(roles: tuple[str, ...]) -> tuple[str, ...]:
    """The roles of an account made admin: an admin is a customer too."""
    return tuple(sorted({*roles, ADMIN, CUSTOMER}))


def hash_password(password: str) -> str:
    """CPU-bound by design (argon2id): callers run it off the event loop."""
    return HASHER.hash(password)


@cache
def _dummy_hash() -> str:
    return HASHER.hash(secrets.token_urlsafe(16))


def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether `password` is the one hashed; with no hash (an unknown email) a dummy is verified anyway, so
    both answers take about as long and timing does not tell which emails have accounts."""
    try:
        return HASHER.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
