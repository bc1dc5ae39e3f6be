"""PostgreSQL's init script (deploy/k8s/base/postgres.yaml) on the machine's real server: each part's role owns its
schema, migrates it at start without any right on the database, and cannot touch another part's schema."""

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import asyncpg
import pytest
import yaml

from sagashop.kit.db import database
from sagashop.kit.settings import SERVICES, Settings
from tests.conftest import _admin, missing, run_aside

from .manifests import ROOT


def init_script() -> str:
    (config,) = [d for d in yaml.safe_load_all((ROOT / "deploy/k8s/base/postgres.yaml").read_text())
                 if d["kind"] == "ConfigMap"]
    return str(config["data"]["10-roles.sh"])


@pytest.fixture
def initialised(postgres_server: str) -> Iterator[str]:
    """A scratch database after the init script ran in it as the postgres image runs it; the database, then the
    roles (the server's, not the database's) are dropped afterwards."""
    if shutil.which("psql") is None:
        missing("psql is not on PATH", "install PostgreSQL's client")
    name = f"sagashop_test_{uuid.uuid4().hex[:12]}"
    run_aside(_admin(f'CREATE DATABASE "{name}"'))
    scratch = f"{postgres_server.rsplit('/', 1)[0]}/{name}"
    url = urlsplit(scratch)
    env = {"PATH": "/usr/bin:/bin", "PGHOST": url.hostname or "", "PGPORT": str(url.port or 5432),
           "POSTGRES_USER": url.username or "postgres", "POSTGRES_DB": url.path.lstrip("/"),
           **{f"ROLE_PASSWORD_{s.upper()}": f"it's {s}'s" for s in SERVICES}}
    try:
        done = subprocess.run(["bash", "-c", init_script()], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        yield scratch
    finally:
        run_aside(_admin(f'DROP DATABASE IF EXISTS "{env["POSTGRES_DB"]}" WITH (FORCE)'))
        for service in SERVICES:
            run_aside(_admin(f"DROP ROLE IF EXISTS sagashop_{service}"))


async def test_a_part_migrates_its_own_schema_and_cannot_reach_another_s(initialised: str) -> None:
    as_payment = initialised.replace("//postgres@", "//sagashop_payment@")
    db = await database(Settings(database_url=as_payment), "payment")  # creates the tables, as a pod's start does
    await db.dispose()
    conn = await asyncpg.connect(as_payment, timeout=3)
    try:
        tables = await conn.fetch("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'payment'")
        assert tables and {t["tableowner"] for t in tables} == {"sagashop_payment"}
        for statement in ('CREATE TABLE "order".stolen (id int)', "CREATE SCHEMA spare",
                          'SELECT * FROM "orchestrator".alembic_version'):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()
    owners = dict(await _fetch(initialised, "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace"))
    assert {s: owners[s] for s in SERVICES} == {s: f"sagashop_{s}" for s in SERVICES}


async def _fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url, timeout=3)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()
