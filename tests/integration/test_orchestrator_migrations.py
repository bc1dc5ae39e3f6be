"""The orchestrator's migration to per-part pins, on SQLite and PostgreSQL: the sagas already stored keep their
route and get each part's version from it."""

import json
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import text

from sagashop.kit.db import database
from sagashop.saga.tables import sagas

STORED = {"s1": {"route": "v2"}, "s2": {"route": "v1"}, "s3": {}}


async def test_each_stored_saga_gets_its_parts_versions_from_its_route(settings, monkeypatch: pytest.MonkeyPatch):
    upgrade = command.upgrade
    monkeypatch.setattr(command, "upgrade", lambda config, _: upgrade(config, "orchestrator_0005"))
    db = await database(settings, "orchestrator")  # as the version before left it
    at = datetime(2024, 1, 1, tzinfo=UTC)
    await db.transaction(lambda conn: conn.execute(sagas.insert(), [
        {"id": i, "name": "checkout", "correlation_id": i, "fingerprint": "", "input": {}, "state": "RUNNING",
         "failure_reason": "", "context": context, "created_at": at, "updated_at": at}
        for i, context in STORED.items()]))
    await db.dispose()
    monkeypatch.setattr(command, "upgrade", upgrade)

    db = await database(settings, "orchestrator")
    rows = await db.transaction(lambda conn: conn.execute(text("SELECT id, context FROM sagas ORDER BY id")).all())
    await db.dispose()

    contexts = {saga_id: c if isinstance(c, dict) else json.loads(c) for saga_id, c in rows}
    parts = ("order", "inventory", "payment", "shipping")
    assert contexts == {"s1": {"route": "v2", **{f"{p}_version": "v2" for p in parts}},
                        "s2": {"route": "v1", **{f"{p}_version": "v1" for p in parts}},
                        "s3": {f"{p}_version": "v1" for p in parts}}
