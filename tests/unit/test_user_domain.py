import pytest

from sagashop.kit.errors import Invalid
from services.user.domain import (
    hash_password,
    password_matches,
    valid_email,
    valid_name,
    valid_password,
    with_admin,
)


def test_an_email_is_kept_lowercased_and_trimmed():
    assert valid_email("  Ada@Example.COM ") == "ada@example.com"


@pytest.mark.parametrize("email", ["", "ada", "ada@", "@example.com", "ada@localhost", "a da@example.com"])
def test_an_implausible_email_is_refused(email):
    with pytest.raises(Invalid, match="email"):
        valid_email(email)


def test_a_password_has_8_to_256_characters():
    assert valid_password("x" * 8) == "x" * 8
    assert valid_password("x" * 256) == "x" * 256
    for bad in ("x" * 7, "x" * 257):
        with pytest.raises(Invalid, match="8 to 256"):
            valid_password(bad)


def test_a_name_is_trimmed_and_must_not_be_blank_or_too_long():
    assert valid_name("  Ada Lovelace ") == "Ada Lovelace"
    for bad in ("", "   ", "A" * 201):
        with pytest.raises(Invalid, match="name"):
            valid_name(bad)


def test_an_admin_is_a_customer_too_and_keeps_any_other_role():
    assert with_admin(()) == ("admin", "customer")
    assert with_admin(("customer",)) == ("admin", "customer")
    assert with_admin(("admin", "support")) == ("admin", "customer", "support")


def test_only_the_hashed_password_matches_its_hash():
    hashed = hash_password("correct horse")
    assert "correct horse" not in hashed
    assert password_matches(hashed, "correct horse")
    assert not password_matches(hashed, "wrong horse")


def test_no_password_matches_a_missing_or_broken_hash():
    assert not password_matches(None, "correct horse")
    assert not password_matches("not an argon2 hash", "correct horse")
