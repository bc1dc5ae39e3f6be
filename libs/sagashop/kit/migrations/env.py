"""The alembic environment every service shares. `sagashop.kit.schema` runs it as a service starts, with the
service's own revisions (`services/<name>/migrations/`) and a connection already inside a transaction; on
PostgreSQL also the service's schema (where the version table is kept too) and a lock that lets one replica
migrate at a time.
Every revision up to the newest is applied in that one transaction: a failed upgrade leaves the schema as it was."""

from alembic import context

config = context.config
context.configure(
    connection=config.attributes["connection"],
    version_table_schema=config.attributes["schema"],
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
