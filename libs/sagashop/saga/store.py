"""The saga log in SQL: one row per saga (state, input, lease) and one per step and action. The log alone says
where a saga stands, so any orchestrator can resume a run whose owner died."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from sagashop.kit.clock import now

from .definition import RUNNING, TERMINAL

metadata = sa.MetaData()
sagas = sa.Table(
    "sagas", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("correlation_id", sa.String(64), nullable=False, index=True),
    sa.Column("business_key", sa.String(300), unique=True),  # e.g. user + Idempotency-Key: one saga each
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("input", sa.JSON, nullable=False),
    sa.Column("state", sa.String(24), nullable=False, index=True),
    sa.Column("failure_reason", sa.String(64), nullable=False),
    sa.Column("owner", sa.String(64)),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
saga_steps = sa.Table(
    "saga_steps", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("saga_id", sa.String(64), sa.ForeignKey("sagas.id"), nullable=False, index=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("handled_by", sa.String(120), nullable=False),
    sa.Column("error", sa.String(500), nullable=False),
    sa.Column("result", sa.JSON),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("saga_id", "name", "action"),
)
STEP_RUNNING, STEP_SUCCEEDED, STEP_FAILED = "RUNNING", "SUCCEEDED", "FAILED"


@dataclass(frozen=True)
class SagaRecord:
    id: str
    name: str
    correlation_id: str
    business_key: str | None
    fingerprint: str
    input: Any
    state: str
    failure_reason: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StepRecord:
    name: str
    action: str
    status: str
    attempts: int
    handled_by: str
    error: str
    result: Any
    started_at: datetime
    finished_at: datetime | None


def _saga(row: Any) -> SagaRecord:
    return SagaRecord(**{f: getattr(row, f) for f in SagaRecord.__dataclass_fields__})


class SagaStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, record: SagaRecord, *, owner: str, lease: float) -> tuple[SagaRecord, bool]:
        """Inserts the saga, owned by `owner`; if its business key is taken, returns the saga holding it."""
        values = {f: getattr(record, f) for f in SagaRecord.__dataclass_fields__}
        try:
            async with self.engine.begin() as conn:
                await conn.execute(sagas.insert().values(owner=owner, lease_until=now() + timedelta(seconds=lease),
                                                         **values))
            return record, True
        except IntegrityError:
            async with self.engine.connect() as conn:
                row = (await conn.execute(sa.select(sagas).where(sagas.c.business_key == record.business_key))).one()
            return _saga(row), False

    async def get(self, saga_id: str) -> SagaRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(sagas).where(sagas.c.id == saga_id))).first()
        return _saga(row) if row else None

    async def steps(self, saga_id: str) -> list[StepRecord]:
        query = sa.select(saga_steps).where(saga_steps.c.saga_id == saga_id).order_by(saga_steps.c.id)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query)
        return [StepRecord(**{f: getattr(r, f) for f in StepRecord.__dataclass_fields__}) for r in rows]

    async def start_step(self, saga_id: str, name: str, action: str) -> None:
        """Marks the step RUNNING before its call is made: after a crash, the log shows its outcome is unknown."""
        key = (saga_steps.c.saga_id == saga_id) & (saga_steps.c.name == name) & (saga_steps.c.action == action)
        async with self.engine.begin() as conn:
            updated = await conn.execute(saga_steps.update().where(key).values(status=STEP_RUNNING, finished_at=None))
            if updated.rowcount == 0:
                await conn.execute(saga_steps.insert().values(
                    saga_id=saga_id, name=name, action=action, status=STEP_RUNNING, attempts=0, handled_by="",
                    error="", started_at=now()))

    async def finish_step(self, saga_id: str, name: str, action: str, *, status: str, attempts: int,
                          handled_by: str, error: str = "", result: Any = None) -> None:
        key = (saga_steps.c.saga_id == saga_id) & (saga_steps.c.name == name) & (saga_steps.c.action == action)
        values: dict[str, Any] = {"status": status, "attempts": saga_steps.c.attempts + attempts,
                                  "error": error[:500], "result": result, "finished_at": now()}
        if handled_by:
            values["handled_by"] = handled_by
        async with self.engine.begin() as conn:
            await conn.execute(saga_steps.update().where(key).values(values))

    async def set_state(self, saga_id: str, state: str, failure_reason: str = "") -> None:
        values: dict[str, Any] = {"state": state, "updated_at": now()}
        if failure_reason:
            values["failure_reason"] = failure_reason
        if state in TERMINAL:
            values.update(owner=None, lease_until=None)
        async with self.engine.begin() as conn:
            await conn.execute(sagas.update().where(sagas.c.id == saga_id).values(values))

    async def claim(self, owner: str, *, lease: float, limit: int = 20) -> list[str]:
        """Takes over unfinished sagas whose owner's lease ran out: one conditional UPDATE, so two orchestrators
        can never both claim one saga."""
        moment = now()
        expired = (sa.select(sagas.c.id).where(sagas.c.state.not_in(TERMINAL), sagas.c.lease_until < moment)
                   .order_by(sagas.c.lease_until).limit(limit))
        async with self.engine.begin() as conn:
            candidates = [row.id for row in await conn.execute(expired)]
            if not candidates:
                return []
            claimed = await conn.execute(
                sagas.update().where(sagas.c.id.in_(candidates), sagas.c.lease_until < moment)
                .values(owner=owner, lease_until=moment + timedelta(seconds=lease)).returning(sagas.c.id))
            return [row.id for row in claimed]

    async def renew(self, owner: str, saga_ids: list[str], *, lease: float) -> None:
        if not saga_ids:
            return
        async with self.engine.begin() as conn:
            await conn.execute(sagas.update().where(sagas.c.id.in_(saga_ids), sagas.c.owner == owner)
                               .values(lease_until=now() + timedelta(seconds=lease)))


    async def release(self, owner: str) -> None:
        """Lets the leases of a stopping orchestrator lapse now, so another resumes its sagas at once."""
        async with self.engine.begin() as conn:
            await conn.execute(sagas.update().where(sagas.c.owner == owner, sagas.c.state.not_in(TERMINAL))
                               .values(lease_until=now()))


def new_record(name: str, saga_id: str, correlation_id: str, business_key: str | None, fingerprint: str,
               input_json: Any) -> SagaRecord:
    moment = now()
    return SagaRecord(saga_id, name, correlation_id, business_key, fingerprint, input_json, RUNNING, "",
                      moment, moment)
