"""Access tokens: HS256 JWTs signed with SAGASHOP_JWT_SECRET, carrying the user id and roles, issued by and for
the shop's API (`iss`, `aud`): a token some other system signed with a shared key is refused."""

import time
from dataclasses import dataclass

import jwt

from sagashop.kit.errors import Unauthenticated

ALGORITHM = "HS256"
ISSUER, AUDIENCE = "sagashop", "sagashop-api"
VERIFIED = "sagashop.principal"  # the request state key under which the rate limiter leaves the token it verified


@dataclass(frozen=True)
class Principal:
    user_id: str
    roles: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


class Tokens:
    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self.secret, self.ttl = secret, ttl_seconds

    def issue(self, user_id: str, roles: list[str]) -> str:
        moment = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": user_id, "roles": roles, "iat": moment,
                  "exp": moment + self.ttl}
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(token, self.secret, algorithms=[ALGORITHM], issuer=ISSUER, audience=AUDIENCE,
                                options={"require": ["iss", "aud", "sub", "exp"]})
        except jwt.PyJWTError as e:
            raise Unauthenticated(f"bad or expired token: {e}") from e
        return Principal(str(claims["sub"]), tuple(claims.get("roles", ())))
