"""A service's schema versions: migrated as the service starts, and safe across versions of the service.

Each service keeps its alembic revisions in `services/<name>/migrations/`. During a rollout, or after a rollback,
an older version of a service can start on a schema a newer one has already migrated to a revision the older code
has never heard of. Revisions only ever add (the expand/contract rule, docs/schema.md), so the older code works on
that schema, and it starts there without migrating, as long as the newer revision descends from its own newest.
Old code cannot read a newer revision's ancestry from its own scripts, so the database keeps it: the table
`applied_revisions` lists every revision ever applied to the schema, written in the transaction that applies them,
and which of them contract the schema (drop or change what older versions use), past which older code must not go.
"""

import logging
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

SERVICES_DIR = Path(__file__).resolve().parents[3] / "services"
ENV_DIR = Path(__file__).resolve().parent / "migrations"
APPLIED = "applied_revisions"  # beside alembic's own version table, in the service's schema
log = logging.getLogger(__name__)


class CannotStart(Exception):
    """The service cannot start on its database; the message says why, and holds no credentials."""


def migrate(connection: Connection, service: str, revisions: Path | None = None) -> None:
    """Upgrades the service's schema to the newest of `revisions` (default: the service's own), or leaves a newer
    schema that descends from it and still holds what it uses as it is; refuses any other. Runs in the caller's
    transaction, so a failed upgrade leaves the schema as it was; on PostgreSQL under a lock held to its end, so
    when several replicas start together one migrates and the others find the schema done."""
    postgres = connection.dialect.name == "postgresql"
    schema = service if postgres else None
    if postgres:
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": f"sagashop:{service}"})
        # created only when missing: even with IF NOT EXISTS, CREATE SCHEMA needs the right to create schemas in
        # the database, which a role that owns its schema only (deploy/k8s/base/postgres.yaml) does not have
        if connection.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": service}).first() is None:
            connection.execute(text(f'CREATE SCHEMA "{service}"'))
    config = _config(connection, schema, revisions or SERVICES_DIR / service / "migrations")
    scripts = ScriptDirectory.from_config(config)
    ours = {script.revision: script for script in scripts.walk_revisions()}
    applied = _applied_table(schema)
    applied.create(connection, checkfirst=True)
    current = set(MigrationContext.configure(connection, opts={"version_table_schema": schema}).get_current_heads())
    recorded = {r: c for r, c in connection.execute(sa.select(applied.c.revision, applied.c.contracts))}
    if not current <= ours.keys():
        _accept_newer(service, current - ours.keys(), scripts.get_heads(), recorded, set(ours))
        return
    command.upgrade(config, "head")  # from ours, or from nothing
    # every revision of ours is applied now; a schema migrated before the table existed gets its history too
    if missing := [script for revision, script in ours.items() if revision not in recorded]:
        connection.execute(sa.insert(applied), [
            {"revision": m.revision, "contracts": bool(getattr(m.module, "contracts", False))} for m in missing])


def _accept_newer(service: str, newer: set[str], heads: Sequence[str], recorded: dict[str, bool],
                  ours: set[str]) -> None:
    """A schema at revisions our scripts do not know: a newer version's if our newest is among the revisions
    applied on the way to them, else foreign. Then every recorded revision we do not know came after our newest,
    and none of them may have contracted the schema: what it removed or changed may be something we use."""
    at, ours_newest = ", ".join(sorted(newer)), ", ".join(heads)
    if not set(heads) <= recorded.keys():
        raise CannotStart(
            f"the {service} schema is at revision {at}, which is neither one of this version's revisions nor a "
            f"descendant of its newest ({ours_newest}); refusing to start on it (a schema is never migrated down: "
            "see docs/schema.md)")
    if contracted := sorted(r for r, contracts in recorded.items() if contracts and r not in ours):
        raise CannotStart(
            f"the {service} schema is at revision {at}, past {', '.join(contracted)}, which removed or changed "
            f"what this version ({ours_newest}) may use; refusing to start on it (docs/schema.md)")
    log.info("the %s schema is at revision %s, newer than this version's %s and descended from it: starting on it "
             "as it is", service, at, ours_newest)


def _config(connection: Connection, schema: str | None, revisions: Path) -> Config:
    config = Config()
    config.set_main_option("path_separator", "os")
    config.set_main_option("script_location", str(ENV_DIR))
    config.set_main_option("version_locations", str(revisions))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


def _applied_table(schema: str | None) -> sa.Table:
    return sa.Table(
        APPLIED, sa.MetaData(schema=schema),
        sa.Column("revision", sa.String(32), primary_key=True),  # as long as alembic's version table allows
        # set by a revision whose module says `contracts = True`: it drops or changes what older versions use
        sa.Column("contracts", sa.Boolean, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
