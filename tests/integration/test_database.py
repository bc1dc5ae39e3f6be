"""kit.db's units of work on SQLite and PostgreSQL: a transaction is all or nothing, and no connection goes back
to the pool inside one."""

import asyncio

import pytest
from sqlalchemy import text

from sagashop.kit.db import database
from sagashop.kit.settings import Settings
from services.payment.domain import CHARGED, Payment
from services.payment.repository import Payments


class Refused(Exception):
    pass


@pytest.fixture
async def db(settings):
    db = await database(settings, "payment")
    yield db
    await db.dispose()


def charge(key: str) -> Payment:
    return Payment(key, "order-1", CHARGED, 100, "EUR")


async def test_a_failed_transaction_writes_nothing_and_leaves_every_connection_usable(db):
    def half_done(conn):
        Payments(conn).add(charge("lost-1"))
        Payments(conn).add(charge("lost-2"))
        raise Refused

    for _ in range(3):
        with pytest.raises(Refused):
            await db.transaction(half_done)
    # more units than the pool holds connections: each would fail inside a transaction left open or aborted
    for n in range(40):
        await db.autocommit(lambda conn, n=n: Payments(conn).add(charge(f"kept-{n}")))
    await db.transaction(lambda conn: Payments(conn).add(charge("kept-last")))

    found = await db.autocommit(lambda conn: [Payments(conn).payment(k) for k in ("lost-1", "lost-2", "kept-39",
                                                                                  "kept-last")])
    assert [p.key if p else None for p in found] == [None, None, "kept-39", "kept-last"]


async def test_a_transaction_sees_its_own_writes_and_commits_them_together(db):
    def both(conn):
        payments = Payments(conn)
        payments.add(charge("a"))
        assert payments.payment("a") is not None  # inside the transaction
        payments.add(charge("b"))
        return "done"

    assert await db.transaction(both) == "done"
    assert await db.autocommit(lambda conn: [Payments(conn).first(k).key for k in ("a", "b")]) == ["a", "b"]


async def test_a_part_holds_no_more_postgres_connections_than_its_pool_size_and_half_more_at_a_peak(
        postgres_database):
    db = await database(Settings(database_url=postgres_database, database_pool_size=2), "payment")
    try:
        pids = await asyncio.gather(*(db.autocommit(lambda conn: conn.execute(
            text("SELECT pg_backend_pid() FROM pg_sleep(0.2)")).scalar()) for _ in range(8)))
        open_after = await db.autocommit(lambda conn: conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")).scalar())
    finally:
        await db.dispose()
    assert len(pids) == 8 and len(set(pids)) == 3  # 2 kept open, 1 more at the peak; the other units waited
    assert open_after <= 2  # the one beyond the pool was closed once the peak passed
