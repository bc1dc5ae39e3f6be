"""The saga log in SQL: one row per saga (state, input, lease), one per step and action, and an audit trail of
operator actions. The log alone says where a saga stands, so any orchestrator can resume a run whose owner died.

A store belongs to one orchestrator (`owner`). Every transition it writes first renews the saga's lease on the
condition that it still holds it: an orchestrator that lost a saga to another (its lease ran out) is fenced off
with LeaseLost instead of writing over the new owner's progress."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sagashop.kit import telemetry
from sagashop.kit.clock import now

from .definition import ACTIVE, NEEDS_ATTENTION, RUNNING

metadata = sa.MetaData()
sagas = sa.Table(  # the schema itself is in services/orchestrator/migrations
    "sagas", metadata, sa.Column("id", sa.String, primary_key=True), sa.Column("name", sa.String),
    sa.Column("correlation_id", sa.String), sa.Column("business_key", sa.String), sa.Column("fingerprint", sa.String),
    sa.Column("input", sa.JSON), sa.Column("state", sa.String), sa.Column("failure_reason", sa.String),
    sa.Column("route", sa.String), sa.Column("owner", sa.String), sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True)), sa.Column("updated_at", sa.DateTime(timezone=True)),
    sa.Column("traceparent", sa.String),
)
saga_steps = sa.Table(
    "saga_steps", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("saga_id", sa.String),
    sa.Column("name", sa.String), sa.Column("action", sa.String), sa.Column("status", sa.String),
    sa.Column("attempts", sa.Integer), sa.Column("handled_by", sa.String), sa.Column("error", sa.String),
    sa.Column("result", sa.JSON), sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
)
saga_audit = sa.Table(
    "saga_audit", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("saga_id", sa.String),
    sa.Column("action", sa.String), sa.Column("reason", sa.String), sa.Column("actor", sa.String),
    sa.Column("at", sa.DateTime(timezone=True)),
)
STEP_RUNNING, STEP_SUCCEEDED, STEP_FAILED = "RUNNING", "SUCCEEDED", "FAILED"


class LeaseLost(Exception):
    """Another orchestrator owns this saga now."""


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
    route: str  # the version set every step and undo of this saga is sent to (v1: stable, v2: canary)
    created_at: datetime
    updated_at: datetime
    traceparent: str | None = None  # W3C trace context of the call that started the saga


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


@dataclass(frozen=True)
class AuditRecord:
    action: str
    reason: str
    actor: str
    at: datetime


def _record(cls: type, row: Any) -> Any:
    return cls(**{f: getattr(row, f) for f in cls.__dataclass_fields__})


class SagaStore:
    def __init__(self, engine: AsyncEngine, owner: str, lease: float) -> None:
        self.engine, self.owner, self.lease = engine, owner, lease

    def _lease_until(self) -> datetime:
        return now() + timedelta(seconds=self.lease)

    async def create(self, record: SagaRecord) -> tuple[SagaRecord, bool]:
        """Inserts the saga, owned here; if its business key is taken, returns the saga holding it."""
        values = {f: getattr(record, f) for f in SagaRecord.__dataclass_fields__}
        try:
            async with self.engine.begin() as conn:
                await conn.execute(sagas.insert().values(owner=self.owner, lease_until=self._lease_until(), **values))
            return record, True
        except IntegrityError:
            async with self.engine.connect() as conn:
                row = (await conn.execute(sa.select(sagas).where(sagas.c.business_key == record.business_key))).first()
            if row is None:  # the id, not the key, collided: not a repeat
                raise
            return _record(SagaRecord, row), False

    async def get(self, saga_id: str) -> SagaRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(sagas).where(sagas.c.id == saga_id))).first()
        return _record(SagaRecord, row) if row else None

    async def recent(self, state: str | None, limit: int = 100) -> list[SagaRecord]:
        query = sa.select(sagas).order_by(sagas.c.created_at.desc(), sagas.c.id).limit(limit)
        if state:
            query = query.where(sagas.c.state == state)
        async with self.engine.connect() as conn:
            return [_record(SagaRecord, row) for row in await conn.execute(query)]

    async def steps(self, saga_id: str) -> list[StepRecord]:
        query = sa.select(saga_steps).where(saga_steps.c.saga_id == saga_id).order_by(saga_steps.c.id)
        async with self.engine.connect() as conn:
            return [_record(StepRecord, row) for row in await conn.execute(query)]

    async def audit(self, saga_id: str) -> list[AuditRecord]:
        query = sa.select(saga_audit).where(saga_audit.c.saga_id == saga_id).order_by(saga_audit.c.id)
        async with self.engine.connect() as conn:
            return [_record(AuditRecord, row) for row in await conn.execute(query)]

    async def _fence(self, conn: AsyncConnection, saga_id: str) -> None:
        held = await conn.execute(sagas.update().where(sagas.c.id == saga_id, sagas.c.owner == self.owner)
                                  .values(lease_until=self._lease_until()))
        if held.rowcount != 1:
            raise LeaseLost(saga_id)

    async def start_step(self, saga_id: str, name: str, action: str) -> None:
        """Marks the step RUNNING before its call is made: after a crash, the log shows its outcome is unknown."""
        key = (saga_steps.c.saga_id == saga_id) & (saga_steps.c.name == name) & (saga_steps.c.action == action)
        async with self.engine.begin() as conn:
            await self._fence(conn, saga_id)
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
            await self._fence(conn, saga_id)
            await conn.execute(saga_steps.update().where(key).values(values))

    async def set_state(self, saga_id: str, state: str, failure_reason: str = "") -> None:
        """Moves the saga to `state`; a saga that stops here (ended, or parked for an operator) is let go."""
        values: dict[str, Any] = {"state": state, "updated_at": now()}
        if failure_reason:
            values["failure_reason"] = failure_reason
        if state not in ACTIVE:
            values.update(owner=None, lease_until=None)
        async with self.engine.begin() as conn:
            await self._fence(conn, saga_id)
            await conn.execute(sagas.update().where(sagas.c.id == saga_id).values(values))

    async def take_over(self, saga_id: str, state: str, failure_reason: str, *, action: str, note: str,
                        actor: str) -> bool:
        """An operator's move of a parked saga (NEEDS_ATTENTION): its new state, owned here if it is to run
        again, and the audit line, in one transaction. False if the saga was not parked."""
        values: dict[str, Any] = {"state": state, "updated_at": now(), "failure_reason": failure_reason,
                                  "owner": self.owner if state in ACTIVE else None,
                                  "lease_until": self._lease_until() if state in ACTIVE else None}
        async with self.engine.begin() as conn:
            parked = (sagas.c.id == saga_id) & (sagas.c.state == NEEDS_ATTENTION)
            moved = await conn.execute(sagas.update().where(parked).values(values))
            if moved.rowcount != 1:
                return False
            await conn.execute(saga_audit.insert().values(saga_id=saga_id, action=action, reason=note[:500],
                                                          actor=actor[:200], at=now()))
        return True

    async def claim(self, limit: int = 20) -> list[str]:
        """Takes over running sagas whose owner's lease ran out: one conditional UPDATE, so two orchestrators
        can never both claim one saga."""
        moment = now()
        expired = (sa.select(sagas.c.id).where(sagas.c.state.in_(ACTIVE), sagas.c.lease_until < moment)
                   .order_by(sagas.c.lease_until).limit(limit))
        async with self.engine.begin() as conn:
            candidates = [row.id for row in await conn.execute(expired)]
            if not candidates:
                return []
            claimed = await conn.execute(
                sagas.update().where(sagas.c.id.in_(candidates), sagas.c.lease_until < moment)
                .values(owner=self.owner, lease_until=self._lease_until()).returning(sagas.c.id))
            return [row.id for row in claimed]

    async def renew(self, saga_ids: list[str]) -> None:
        if saga_ids:
            async with self.engine.begin() as conn:
                await conn.execute(sagas.update().where(sagas.c.id.in_(saga_ids), sagas.c.owner == self.owner)
                                   .values(lease_until=self._lease_until()))

    async def release(self) -> None:
        """Lets the leases of a stopping orchestrator lapse now, so another resumes its sagas at once."""
        async with self.engine.begin() as conn:
            await conn.execute(sagas.update().where(sagas.c.owner == self.owner, sagas.c.state.in_(ACTIVE))
                               .values(lease_until=now()))


def new_record(name: str, saga_id: str, correlation_id: str, business_key: str | None, fingerprint: str,
               input_json: Any, route: str = "v1") -> SagaRecord:
    """A saga starting now, in the current trace (its runs, wherever they happen, link back to it)."""
    moment = now()
    return SagaRecord(saga_id, name, correlation_id, business_key, fingerprint, input_json, RUNNING, "", route,
                      moment, moment, telemetry.traceparent())
