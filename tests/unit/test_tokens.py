"""Access tokens are the shop's own: issued by and for its API, signed with a key long enough to be one."""

import os
import subprocess
import sys
import time

import jwt
import pytest

from sagashop.kit.errors import Unauthenticated
from services.gateway.tokens import ALGORITHM, Tokens

SECRET = "k" * 32


def signed(**claims: object) -> str:
    moment = int(time.time())
    return jwt.encode({"sub": "u1", "roles": ["admin"], "iat": moment, "exp": moment + 60, **claims}, SECRET,
                      algorithm=ALGORITHM)


def test_a_token_the_shop_issued_names_its_user_and_roles():
    tokens = Tokens(SECRET, 60)
    principal = tokens.verify(tokens.issue("u1", ["customer"]))
    assert (principal.user_id, principal.roles) == ("u1", ("customer",))


@pytest.mark.parametrize("claims", [{}, {"iss": "sagashop"}, {"aud": "sagashop-api"},
                                    {"iss": "elsewhere", "aud": "sagashop-api"}, {"iss": "sagashop", "aud": "other"}])
def test_a_token_signed_with_the_key_but_not_issued_by_and_for_the_shop_is_refused(claims):
    with pytest.raises(Unauthenticated):
        Tokens(SECRET, 60).verify(signed(**claims))


def test_a_signing_key_under_32_characters_is_refused_at_start_with_a_clear_message():
    env = {**os.environ, "SAGASHOP_JWT_SECRET": "short-secret"}
    started = subprocess.run([sys.executable, "-m", "tools.cli", "serve", "gateway"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert started.returncode == 2
    assert started.stderr.strip() == ("sagashop: bad configuration: SAGASHOP_JWT_SECRET: String should have at "
                                      "least 32 characters")
