"""The emails' texts, built from the events alone, and the SMTP URL the notification service sends through."""

from dataclasses import replace
from email import message_from_bytes
from email.policy import default

import pytest

from sagashop.events.catalog import PricedItem
from sagashop.kit.schema import CannotStart
from sagashop.kit.settings import Settings
from services.notification import domain
from services.notification.domain import Customer
from services.notification.mailer import BadSmtpUrl, Mailer, SmtpServer, message, smtp_server
from services.notification.main import main

ADA = Customer("u1", "ada@example.com", "Ada")
LINES = [PricedItem(sku="LAMP", quantity=2, unit_price_cents=3_900), PricedItem(sku="MUG", quantity=1,
                                                                                 unit_price_cents=1_205)]
CONTRACT_REASONS = ["out_of_stock", "unknown_product", "payment_declined", "shipping_rejected",
                    "inventory_unavailable", "payment_unavailable", "shipping_unavailable", "order_unavailable"]


def test_an_approved_order_email_names_the_order_its_items_and_total():
    email = domain.approved(ADA, "o-1", LINES, 9_005, "EUR")
    assert (email.kind, email.subject) == ("order_approved", "Your order o-1 is confirmed")
    assert email.body.startswith("Hello Ada,")
    assert "2 x LAMP  78.00 EUR" in email.body and "1 x MUG  12.05 EUR" in email.body
    assert "Total: 90.05 EUR" in email.body


def test_every_failure_reason_of_the_contract_reads_as_its_own_sentence():
    bodies = {reason: domain.rejected(ADA, "o-1", reason, 0, "EUR").body for reason in CONTRACT_REASONS}
    assert len(set(bodies.values())) == len(CONTRACT_REASONS)
    assert all("_" not in domain.reason(reason) for reason in CONTRACT_REASONS)
    assert "our payment service did not answer in time" in bodies["payment_unavailable"]
    assert "your payment was declined" in bodies["payment_declined"]


def test_a_rejection_says_whether_money_was_refunded():
    assert "Nothing was charged." in domain.rejected(ADA, "o-1", "out_of_stock", 0, "EUR").body
    refunded = domain.rejected(ADA, "o-1", "shipping_rejected", 9_005, "EUR").body
    assert "The 90.05 EUR we charged has been refunded." in refunded


def test_a_reason_added_after_this_version_still_reads_as_words():
    assert domain.reason("fraud_suspected") == "it could not be completed"


def test_a_cancellation_tells_the_refund_and_a_shipment_its_tracking_number():
    assert "Refunded: 90.05 EUR" in domain.cancelled(ADA, "o-1", LINES, 9_005, "EUR").body
    shipped = domain.shipment_created(ADA, "o-1", "TRK-42")
    assert (shipped.kind, "Tracking number: TRK-42" in shipped.body) == ("shipment_created", True)


def test_an_email_sent_again_has_the_same_id_and_message_id():
    first, again = domain.approved(ADA, "o-1", LINES, 9_005, "EUR"), domain.approved(ADA, "o-1", LINES, 9_005, "EUR")
    assert first.id == again.id != domain.cancelled(ADA, "o-1", LINES, 9_005, "EUR").id
    assert first.id != domain.approved(ADA, "o-2", LINES, 9_005, "EUR").id
    msg = message(first, "shop <orders@sagashop.local>")
    assert msg["Message-ID"] == f"<{first.id}@sagashop>"
    assert (msg["To"], msg["From"]) == ("Ada <ada@example.com>", "shop <orders@sagashop.local>")


def test_a_name_and_subject_beyond_ascii_read_back_as_written():
    zoe = Customer("u2", "zoe@example.com", "Zoë Ünderwood, Jr.")
    email = replace(domain.shipment_created(zoe, "o-1", "TRK-42"), subject="Unterwegs — o-1")
    received = message_from_bytes(message(email, "shop <orders@sagashop.local>").as_bytes(), policy=default)
    assert (received["To"], received["Subject"]) == ('"Zoë Ünderwood, Jr." <zoe@example.com>', "Unterwegs — o-1")
    assert received.get_content() == email.body and email.body.startswith("Hello Zoë Ünderwood, Jr.,")


@pytest.mark.parametrize("name", ["Ada\r\nBcc: someone@example.com", "Ada\nBcc: someone@example.com"])
def test_a_line_break_in_a_header_is_refused_not_sent_as_a_header_of_its_own(name):
    with pytest.raises(ValueError, match="line break"):
        message(domain.shipment_created(Customer("u3", "ada@example.com", name), "o-1", "TRK-42"), "shop <a@b.c>")


@pytest.mark.parametrize(("url", "server"), [
    ("smtp://mail.example.com", SmtpServer("mail.example.com", 25, tls=False)),
    ("smtp://127.0.0.1:2525", SmtpServer("127.0.0.1", 2525, tls=False)),
    ("smtps://mail.example.com", SmtpServer("mail.example.com", 465, tls=True)),
    ("smtp://bob:p%40ss%3Aword@mail.example.com:587/", SmtpServer("mail.example.com", 587, False, "bob", "p@ss:word")),
])
def test_an_smtp_url_names_the_server_its_tls_and_credentials(url, server):
    assert smtp_server(url) == server


@pytest.mark.parametrize(("url", "says"), [
    ("http://mail.example.com", "must start with smtp:// or smtps://"),
    ("mail.example.com:25", "must start with smtp:// or smtps://"),
    ("smtp://", "names no host"),
    ("smtp://bob:secret-pw@mail.example.com:99999", "bad port"),
    ("smtp://bob:secret-pw@mail.example.com:smtp", "bad port"),
    ("smtp://bob@mail.example.com", "a user without a password"),
    ("smtp://bob:secret-pw@mail.example.com/inbox", "has a path"),
])
def test_a_bad_smtp_url_is_refused_with_a_reason_that_never_repeats_the_password(url, says):
    with pytest.raises(BadSmtpUrl) as refused:
        Mailer(url, "orders@sagashop.local")
    assert says in str(refused.value)
    assert "secret-pw" not in str(refused.value)


def test_the_password_is_kept_out_of_the_servers_repr():
    assert "secret-pw" not in repr(smtp_server("smtps://bob:secret-pw@mail.example.com"))


async def test_the_service_refuses_to_start_on_a_bad_smtp_url_before_it_opens_anything(tmp_path):
    with pytest.raises(CannotStart, match="must start with smtp:// or smtps://"):
        await main(Settings(smtp_url="http://bob:secret-pw@mail.example.com", data_dir=tmp_path / "data"))
    assert not (tmp_path / "data").exists()
