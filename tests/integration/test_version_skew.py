"""A service starts on the schema it finds: one a newer version migrated further (a rollback's older pods), but not
a foreign one; an existing schema gains its history of applied revisions; and a server not answering yet is waited
for, up to a bound."""

import asyncio
import logging
import shutil
import time
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url

from sagashop.kit.db import Database, database
from sagashop.kit.schema import ENV_DIR, SERVICES_DIR, CannotStart, migrate
from sagashop.kit.settings import Settings
from services.payment.domain import CHARGED, Payment
from services.payment.repository import Payments
from tools.local.parts import free_port

REVISION = '''"""{doc}

Revision ID: {revision}
Revises: {down}
"""

import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = {down!r}
{marker}

def upgrade() -> None:
    {upgrade}
'''


def revisions_of(folder: Path) -> ScriptDirectory:
    return ScriptDirectory(str(ENV_DIR), version_locations=[str(folder)])


def payment_head() -> str:
    """The newest of the payment service's own revisions."""
    return str(revisions_of(SERVICES_DIR / "payment" / "migrations").get_current_head())


def newer_payment_revisions(tmp_path: Path, upgrade: str, marker: str = "") -> Path:
    """The payment service's revisions as a newer version ships them: ours, and one more after our newest."""
    folder = tmp_path / "newer"
    shutil.copytree(SERVICES_DIR / "payment" / "migrations", folder, ignore=shutil.ignore_patterns("__pycache__"))
    head = revisions_of(folder).get_current_head()
    (folder / "payment_newer.py").write_text(REVISION.format(
        doc="A revision of a version newer than this code.", revision="payment_newer", down=head, upgrade=upgrade,
        marker=marker))
    return folder


async def migrated_with(settings: Settings, service: str, revisions: Path) -> None:
    """What another version of the service does as it starts: the same migration, with its own revisions."""
    db = Database(settings, service)
    try:
        await db.transaction(lambda conn: migrate(conn, service, revisions), tries=1)
    finally:
        await db.dispose()


def versions(conn: Connection) -> tuple[list[str], set[str]]:
    """The schema's revision (alembic's version table) and the revisions recorded as applied to it."""
    return (conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all(),
            set(conn.execute(text("SELECT revision FROM applied_revisions")).scalars()))


async def test_the_current_code_starts_on_a_schema_a_newer_version_migrated_and_works_on_it(
        settings, tmp_path, caplog):
    await migrated_with(settings, "payment", newer_payment_revisions(
        tmp_path, 'op.add_column("payments", sa.Column("note", sa.String(200), nullable=True))'))
    caplog.set_level(logging.INFO, logger="sagashop.kit.schema")

    db = await database(settings, "payment")
    try:
        def charge_and_read(conn: Connection) -> tuple[bool, int]:
            payments = Payments(conn)
            new = payments.add_if_absent(Payment("key-1", "order-1", CHARGED, 1250, "EUR"), "charge")
            return new, sum(line.amount_cents for line in payments.ledger("order-1"))

        assert await db.autocommit(charge_and_read) == (True, 1250)
        version, _ = await db.autocommit(versions)
        columns = await db.autocommit(lambda conn: {c["name"] for c in inspect(conn).get_columns("payments")})
    finally:
        await db.dispose()
    assert version == ["payment_newer"] and "note" in columns  # left as the newer version made it
    assert f"revision payment_newer, newer than this version's {payment_head()}" in caplog.text


async def test_a_schema_at_a_revision_that_does_not_descend_from_ours_is_refused_and_left_alone(settings, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "elsewhere_0001.py").write_text(REVISION.format(
        doc="Another history altogether.", revision="elsewhere_0001", down=None, marker="",
        upgrade='op.create_table("elsewhere", sa.Column("id", sa.Integer, primary_key=True))'))
    await migrated_with(settings, "payment", foreign)

    with pytest.raises(CannotStart, match=r"payment schema is at revision elsewhere_0001, which is neither one of "
                       rf"this version's revisions nor a descendant of its newest \({payment_head()}\)"):
        await database(settings, "payment")

    db = Database(settings, "payment")
    try:
        assert await db.autocommit(versions) == (["elsewhere_0001"], {"elsewhere_0001"})
    finally:
        await db.dispose()


async def test_a_schema_a_newer_version_contracted_is_refused(settings, tmp_path):
    await migrated_with(settings, "payment", newer_payment_revisions(
        tmp_path, 'op.drop_index("ix_payments_order_id", table_name="payments")', marker="contracts = True\n"))

    with pytest.raises(CannotStart, match=r"payment schema is at revision payment_newer, past payment_newer, which "
                       rf"removed or changed what this version \({payment_head()}\) may use"):
        await database(settings, "payment")


async def test_a_schema_migrated_before_the_history_existed_gets_it_and_is_upgraded(settings):
    def upgrade_as_before(conn: Connection) -> None:  # alembic alone, as every start did before the history
        if conn.dialect.name == "postgresql":
            conn.execute(text('CREATE SCHEMA "orchestrator"'))
        config = Config()
        config.set_main_option("path_separator", "os")
        config.set_main_option("script_location", str(ENV_DIR))
        config.set_main_option("version_locations", str(SERVICES_DIR / "orchestrator" / "migrations"))
        config.attributes.update(connection=conn, schema="orchestrator" if conn.dialect.name == "postgresql" else None)
        command.upgrade(config, "orchestrator_0003")

    old = Database(settings, "orchestrator")
    try:
        await old.transaction(upgrade_as_before, tries=1)
    finally:
        await old.dispose()

    db = await database(settings, "orchestrator")
    try:
        found = await db.autocommit(versions)
    finally:
        await db.dispose()
    scripts = revisions_of(SERVICES_DIR / "orchestrator" / "migrations")
    assert found == ([scripts.get_current_head()], {script.revision for script in scripts.walk_revisions()})
    assert {"orchestrator_0001", "orchestrator_0003", "orchestrator_0004"} <= found[1]


async def test_a_server_that_never_answers_fails_the_start_after_the_wait_naming_it(caplog):
    port = free_port()
    settings = Settings(database_url=f"postgresql://shop:hunter2-secret@127.0.0.1:{port}/shop",
                        database_wait_seconds=1.5)
    caplog.set_level(logging.WARNING, logger="sagashop.kit.db")
    started = time.monotonic()
    with pytest.raises(CannotStart, match=rf"database at 127\.0\.0\.1:{port} did not answer within 1\.5 s") as e:
        await database(settings, "payment")
    assert 1.4 <= time.monotonic() - started < 3
    waits = [r.getMessage() for r in caplog.records if r.getMessage().startswith("waiting")]
    assert len(waits) >= 3 and all(f"127.0.0.1:{port}" in w for w in waits), waits
    assert "hunter2-secret" not in caplog.text + str(e.value) and "shop:" not in caplog.text


async def forward_after(delay: float, port: int, target: tuple[str, int]) -> asyncio.Server:
    """After `delay`, a TCP proxy on `port` to `target`: a database server that comes up while a service waits."""
    await asyncio.sleep(delay)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True)

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def test_a_server_that_comes_up_during_the_wait_is_used(postgres_database, caplog):
    port, real = free_port(), make_url(postgres_database)
    through_proxy = real.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    caplog.set_level(logging.WARNING, logger="sagashop.kit.db")
    proxy = asyncio.create_task(forward_after(1.0, port, (real.host or "127.0.0.1", real.port or 5432)))
    started = time.monotonic()
    db = await database(Settings(database_url=through_proxy, database_wait_seconds=10), "payment")
    server = await proxy
    try:
        assert time.monotonic() - started >= 1.0
        assert await db.autocommit(lambda conn: Payments(conn).payment("none")) is None
    finally:
        await db.dispose()
        server.close()
    assert any(f"database at 127.0.0.1:{port}" in r.getMessage() for r in caplog.records)


async def test_a_server_that_turns_the_service_away_fails_the_start_at_once(postgres_database):
    stranger = make_url(postgres_database).set(username="no_such_role").render_as_string(hide_password=False)
    started = time.monotonic()
    with pytest.raises(CannotStart, match=r'refused payment: role "no_such_role" does not exist'):
        await database(Settings(database_url=stranger, database_wait_seconds=30), "payment")
    assert time.monotonic() - started < 2
