"""The operations PostgreSQL does in one statement and the portable form in several: all or nothing in either
form, on every database that runs it."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError

from sagashop.kit.db import Database
from sagashop.values import Line
from services.inventory.domain import Product
from services.inventory.repository import HELD, Inventory, Reservation
from services.payment.domain import CHARGE, CHARGED, Payment
from services.payment.repository import Payments
from tests.integration.forms import each_form

pytestmark = each_form


class Refused(Exception):
    pass


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements the database is sent meanwhile."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


async def stocked(db: Database, **available: int) -> None:
    await db.transaction(lambda conn: [Inventory(conn).upsert(Product(sku, sku.title(), 100, "EUR", n),
                                                              only_if_absent=False) for sku, n in available.items()])


async def test_a_reservation_is_one_statement_on_postgres_and_one_per_line_in_a_transaction_if_portable(
        open_db, settings, portable_only):
    db = await open_db("inventory")
    await stocked(db, LAMP=5, SOFA=5)
    held = Reservation("k1", "order-1", HELD, (Line("LAMP", 1), Line("SOFA", 2)))
    with statements(db) as sent:
        assert await db.autocommit(lambda conn: Inventory(conn).reserve(held)) is None

    if settings.database_url and not portable_only:
        assert len(sent) == 1
    else:  # BEGIN, the reservation, a take per line, its event, COMMIT
        assert [s.split()[0] for s in sent] == ["BEGIN", "INSERT", "UPDATE", "UPDATE", "INSERT", "COMMIT"]
    assert [(p.available, p.reserved) for p in await db.autocommit(lambda conn: Inventory(conn).products())] == [
        (4, 1), (3, 2)]


async def test_a_commit_whose_units_cannot_move_leaves_the_reservation_held(open_db):
    db = await open_db("inventory")
    await stocked(db, LAMP=5)
    held = Reservation("k1", "order-1", HELD, (Line("LAMP", 2),))
    await db.autocommit(lambda conn: Inventory(conn).reserve(held))
    await db.autocommit(lambda conn: conn.execute(text("UPDATE products SET reserved = 1")))  # not 2 any more

    with pytest.raises(IntegrityError):  # reserved would go below zero
        await db.autocommit(lambda conn: Inventory(conn).commit_held("k1"))

    assert (await db.autocommit(lambda conn: Inventory(conn).reservation("k1"))).state == HELD
    lamp = await db.autocommit(lambda conn: Inventory(conn).product("LAMP"))
    assert (lamp.available, lamp.reserved, lamp.sold) == (3, 1, 0)


async def test_a_charge_whose_ledger_line_is_refused_leaves_no_payment(open_db):
    db = await open_db("payment")
    charged = Payment("k1", "order-1", CHARGED, 100, "EUR")
    await db.autocommit(lambda conn: Payments(conn).record(charged, CHARGE))  # its one charge line, already

    with pytest.raises(IntegrityError):  # one ledger line per key and kind
        await db.autocommit(lambda conn: Payments(conn).add_if_absent(charged, CHARGE))

    assert await db.autocommit(lambda conn: Payments(conn).payment("k1")) is None


async def test_inside_a_transaction_the_portable_form_joins_it_and_rolls_back_with_it(open_db):
    db = await open_db("inventory")
    await stocked(db, LAMP=5)

    def reserve_then_fail(conn) -> None:  # type: ignore[no-untyped-def]
        Inventory(conn).reserve(Reservation("k1", "order-1", HELD, (Line("LAMP", 2),)))
        raise Refused

    with pytest.raises(Refused):
        await db.transaction(reserve_then_fail)

    assert await db.autocommit(lambda conn: Inventory(conn).reservation("k1")) is None
    assert (await db.autocommit(lambda conn: Inventory(conn).product("LAMP"))).available == 5
