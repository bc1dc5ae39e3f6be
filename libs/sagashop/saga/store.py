"""The saga log in SQL: one row per saga (state, input, lease), one per step and action, and an audit trail of
operator actions. The log alone says where a saga stands, so any orchestrator can resume a run whose owner died.

A store belongs to one orchestrator (`owner`). Every transition it writes first renews the saga's lease on the
condition that it still holds it: an orchestrator that lost a saga to another (its lease ran out) is fenced off
with LeaseLost instead of writing over the new owner's progress."""

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from sagashop.kit import telemetry
from sagashop.kit.batch import GroupCommit
from sagashop.kit.clock import now
from sagashop.kit.db import Database

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


class _Advance:
    """The statements of SagaStore.advance on SQLite, and of a step's start, built once with bind parameters
    (building a statement costs several times what executing it does). `p_*` parameters: the saga (p_id, p_owner,
    ...), a step that ended (p_name, p_action, p_status, ...), a step that starts (p_start, p_start_action,
    p_started_at). PostgreSQL writes moves in batches (ADVANCE_MANY)."""

    def __init__(self) -> None:
        p, text, moment = sa.bindparam, sa.String, sa.DateTime(timezone=True)
        self.fence = sagas.update().where(sagas.c.id == p("p_id"), sagas.c.owner == p("p_owner")).values(
            owner=p("p_owner_after"), lease_until=p("p_lease_until"),
            state=sa.func.coalesce(p("p_state", type_=text), sagas.c.state),
            updated_at=sa.func.coalesce(p("p_updated_at", type_=moment), sagas.c.updated_at),
            failure_reason=sa.func.coalesce(p("p_failure_reason", type_=text), sagas.c.failure_reason))
        step = (saga_steps.c.saga_id == p("p_id")) & (saga_steps.c.name == p("p_name")) & (
            saga_steps.c.action == p("p_action"))
        self.finish = saga_steps.update().where(step).values(
            status=p("p_status"), attempts=saga_steps.c.attempts + p("p_attempts", type_=sa.Integer),
            error=p("p_error"), result=p("p_result"), finished_at=p("p_finished_at"),
            handled_by=sa.func.coalesce(sa.func.nullif(p("p_handled_by", type_=text), ""), saga_steps.c.handled_by))
        self.new_step = {"saga_id": p("p_id"), "name": p("p_start", type_=text),
                         "action": p("p_start_action", type_=text), "status": STEP_RUNNING, "attempts": 0,
                         "handled_by": "", "error": "", "started_at": p("p_started_at", type_=moment)}
        self.start_sqlite = self.start(sqlite.insert(saga_steps).values(self.new_step))

    @staticmethod
    def start(insert: Any) -> Any:
        """A step's row goes RUNNING: a new one, or the one a resumed run or an operator's retry runs again."""
        return insert.on_conflict_do_update(
            index_elements=[saga_steps.c.saga_id, saga_steps.c.name, saga_steps.c.action],
            set_={"status": STEP_RUNNING, "finished_at": None})

    def starts_for(self, saga_id: Any) -> Any:
        """PostgreSQL: the starts of steps (the arrays p_starts and p_start_actions, one step at each index) of the
        saga whose id the column `saga_id` (of a CTE) holds."""
        names = sa.ARRAY(sa.String)
        starts = sa.func.unnest(sa.bindparam("p_starts", type_=names), sa.bindparam("p_start_actions", type_=names)
                                ).table_valued("name", "action").render_derived()
        given = {"saga_id": saga_id, "name": starts.c.name, "action": starts.c.action}
        row = sa.select(*(given.get(k, v if isinstance(v, sa.BindParameter) else sa.literal(v))
                          for k, v in self.new_step.items())).select_from(saga_id.table.join(starts, sa.true()))
        return self.start(postgresql.insert(saga_steps).from_select(list(self.new_step), row))


ADVANCE = _Advance()
# PostgreSQL: the moves of several sagas in one statement, each fenced as SagaStore.advance says. `moves` unpacks
# one array per parameter, one row per index: a move's first row holds the saga's p_* values, each further row of
# the same saga (p_owner NULL: not fenced again) one more step that ended and one more that starts; NULL where a
# row has no such part. `held` is the fence, and steps are written only for a saga in it; the statement returns
# the ids of the sagas held. Plain SQL: SQLAlchemy's Core has no form for UPDATE ... FROM unnest(...).
MOVE_FIELDS = {
    "p_id": "text", "p_owner": "text", "p_owner_after": "text", "p_lease_until": "timestamptz", "p_state": "text",
    "p_updated_at": "timestamptz", "p_failure_reason": "text", "p_name": "text", "p_action": "text",
    "p_status": "text", "p_attempts": "int", "p_handled_by": "text", "p_error": "text", "p_result": "text",
    "p_finished_at": "timestamptz", "p_start": "text", "p_start_action": "text", "p_started_at": "timestamptz"}
ADVANCE_MANY = sa.text(f"""
WITH moves AS (
    SELECT * FROM unnest({", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in MOVE_FIELDS.items())})
        AS m({", ".join(MOVE_FIELDS)})
), held AS (
    UPDATE sagas SET owner = m.p_owner_after, lease_until = m.p_lease_until,
        state = coalesce(m.p_state, sagas.state), updated_at = coalesce(m.p_updated_at, sagas.updated_at),
        failure_reason = coalesce(m.p_failure_reason, sagas.failure_reason)
    FROM moves m WHERE sagas.id = m.p_id AND sagas.owner = m.p_owner
    RETURNING sagas.id
), finished AS (
    UPDATE saga_steps SET status = m.p_status, attempts = saga_steps.attempts + m.p_attempts, error = m.p_error,
        result = CAST(m.p_result AS json), finished_at = m.p_finished_at,
        handled_by = coalesce(nullif(m.p_handled_by, ''), saga_steps.handled_by)
    FROM moves m JOIN held ON held.id = m.p_id
    WHERE saga_steps.saga_id = m.p_id AND saga_steps.name = m.p_name AND saga_steps.action = m.p_action
), started AS (
    INSERT INTO saga_steps (saga_id, name, action, status, attempts, handled_by, error, started_at)
    SELECT m.p_id, m.p_start, m.p_start_action, '{STEP_RUNNING}', 0, '', '', m.p_started_at
    FROM moves m JOIN held ON held.id = m.p_id WHERE m.p_start IS NOT NULL
    ON CONFLICT (saga_id, name, action) DO UPDATE SET status = '{STEP_RUNNING}', finished_at = NULL
)
SELECT id FROM held""")
INSERT_SAGA = sagas.insert()
# PostgreSQL: a new saga and its first stage's starts, one statement (the saga's columns as p_saga_<column>)
INSERT_SAGA_STARTED = ADVANCE.starts_for(postgresql.insert(sagas).values(
    {c.name: sa.bindparam(f"p_saga_{c.name}", type_=c.type) for c in sagas.c}).returning(sagas.c.id).cte("saga").c.id)
SAGA = sa.select(sagas).where(sagas.c.id == sa.bindparam("p_id"))
SAGA_OF_KEY = sa.select(sagas).where(sagas.c.business_key == sa.bindparam("p_key"))
STEPS = sa.select(saga_steps).where(saga_steps.c.saga_id == sa.bindparam("p_id")).order_by(saga_steps.c.id)


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
class Outcome:
    """How one step or undo ended: its status, the attempts it took (added to the log's count), who handled it,
    and its result or error."""

    name: str
    action: str
    status: str
    attempts: int
    handled_by: str
    error: str = ""
    result: Any = None

    def params(self, moment: datetime) -> dict[str, Any]:
        return {"p_name": self.name, "p_action": self.action, "p_status": self.status, "p_attempts": self.attempts,
                "p_handled_by": self.handled_by, "p_error": self.error[:500], "p_result": self.result,
                "p_finished_at": moment}


@dataclass(frozen=True)
class AuditRecord:
    action: str
    reason: str
    actor: str
    at: datetime


def _record(cls: type, row: Any) -> Any:
    return cls(**{f: getattr(row, f) for f in cls.__dataclass_fields__})


class SagaStore:
    def __init__(self, db: Database, owner: str, lease: float) -> None:
        self.db, self.owner, self.lease = db, owner, lease
        self.moves = GroupCommit(self._advance_many, key=itemgetter("p_id"))

    def _lease_until(self) -> datetime:
        return now() + timedelta(seconds=self.lease)

    async def create(self, record: SagaRecord, *, first: Sequence[tuple[str, str]]) -> tuple[SagaRecord, bool]:
        """Inserts the saga, owned here, with the starts of its `first` (step, action) pairs (Saga.first): its run
        begins with them written (one statement on PostgreSQL, one transaction on SQLite). If the saga's business
        key is taken, writes nothing and returns the saga holding it."""
        row = {"owner": self.owner, "lease_until": self._lease_until(),
               **{f: getattr(record, f) for f in SagaRecord.__dataclass_fields__}}
        try:
            if self.db.dialect == "postgresql":
                await self.db.autocommit(lambda conn: conn.execute(INSERT_SAGA_STARTED, {
                    "p_starts": [name for name, _ in first], "p_start_actions": [action for _, action in first],
                    "p_started_at": record.created_at, **{f"p_saga_{k}": v for k, v in row.items()}}))
            else:
                steps = [{"p_id": record.id, "p_start": name, "p_start_action": action,
                          "p_started_at": record.created_at} for name, action in first]
                await self.db.transaction(lambda conn: (conn.execute(INSERT_SAGA, row),
                                                        conn.execute(ADVANCE.start_sqlite, steps)), tries=1)
            return record, True
        except IntegrityError:
            holder = await self.db.autocommit(lambda conn: conn.execute(
                SAGA_OF_KEY, {"p_key": record.business_key}).first())
            if holder is None:  # the id, not the key, collided: not a repeat
                raise
            return _record(SagaRecord, holder), False

    async def get(self, saga_id: str) -> SagaRecord | None:
        row = await self.db.autocommit(lambda conn: conn.execute(SAGA, {"p_id": saga_id}).first())
        return _record(SagaRecord, row) if row else None

    async def recent(self, state: str | None, limit: int = 100) -> list[SagaRecord]:
        query = sa.select(sagas).order_by(sagas.c.created_at.desc(), sagas.c.id).limit(limit)
        if state:
            query = query.where(sagas.c.state == state)
        rows = await self.db.autocommit(lambda conn: conn.execute(query).all())
        return [_record(SagaRecord, row) for row in rows]

    async def steps(self, saga_id: str) -> list[StepRecord]:
        rows = await self.db.autocommit(lambda conn: conn.execute(STEPS, {"p_id": saga_id}).all())
        return [_record(StepRecord, row) for row in rows]

    async def audit(self, saga_id: str) -> list[AuditRecord]:
        query = sa.select(saga_audit).where(saga_audit.c.saga_id == saga_id).order_by(saga_audit.c.id)
        rows = await self.db.autocommit(lambda conn: conn.execute(query).all())
        return [_record(AuditRecord, row) for row in rows]

    async def advance(self, saga_id: str, *, finished: Sequence[Outcome] = (),
                      started: Sequence[tuple[str, str]] = (), state: str | None = None,
                      failure_reason: str = "") -> None:
        """Writes the saga's next move at once: how steps or undos ended, the (name, action) pairs that start now
        (RUNNING, before their calls are made: after a crash the log shows their outcome is unknown), and the
        saga's new state; a saga that stops (ended, or parked for an operator) is let go. The write is fenced: it
        renews the lease only if this orchestrator still holds it, and else writes nothing and raises LeaseLost.
        The move is written with those other runs ask for meanwhile (a group commit: kit/batch.py): on PostgreSQL
        one statement for them all (the fence and the steps as data-modifying CTEs), on SQLite one transaction."""
        if {(f.name, f.action) for f in finished} & set(started):
            raise ValueError("a step cannot end and start in one write")
        stops = state is not None and state not in ACTIVE
        moment = now()
        move: dict[str, Any] = {
            "p_id": saga_id, "p_owner": self.owner, "p_owner_after": None if stops else self.owner,
            "p_lease_until": None if stops else self._lease_until(), "p_state": state,
            "p_updated_at": moment if state is not None else None, "p_failure_reason": failure_reason or None,
            "finished": [f.params(moment) for f in finished],
            "started": [{"p_start": name, "p_start_action": action, "p_started_at": moment}
                        for name, action in started]}
        if not await self.moves.write(move):
            raise LeaseLost(saga_id)

    async def _advance_many(self, moves: list[dict[str, Any]]) -> list[bool]:
        """The moves of a batch, all or none: on PostgreSQL one statement (ADVANCE_MANY), atomic on its own; on
        SQLite each move's statements, in one transaction. Whether each saga was held."""
        if self.db.dialect != "postgresql":
            return await self.db.transaction(lambda conn: [_advance_sqlite(conn, move) for move in moves], tries=1)
        rows = [row for move in moves for row in _rows(move)]
        arrays = {name: [row.get(name) for row in rows] for name in MOVE_FIELDS}
        arrays["p_result"] = [json.dumps(row["p_result"]) if "p_name" in row else None for row in rows]
        held = set(await self.db.autocommit(lambda conn: conn.execute(ADVANCE_MANY, arrays).scalars().all()))
        return [move["p_id"] in held for move in moves]

    async def take_over(self, saga_id: str, state: str, failure_reason: str, *, action: str, note: str,
                        actor: str) -> bool:
        """An operator's move of a parked saga (NEEDS_ATTENTION): its new state, owned here if it is to run
        again, and the audit line, in one transaction. False if the saga was not parked."""
        values: dict[str, Any] = {"state": state, "updated_at": now(), "failure_reason": failure_reason,
                                  "owner": self.owner if state in ACTIVE else None,
                                  "lease_until": self._lease_until() if state in ACTIVE else None}

        def work(conn: Connection) -> bool:
            parked = (sagas.c.id == saga_id) & (sagas.c.state == NEEDS_ATTENTION)
            if conn.execute(sagas.update().where(parked).values(values)).rowcount != 1:
                return False
            conn.execute(saga_audit.insert().values(saga_id=saga_id, action=action, reason=note[:500],
                                                    actor=actor[:200], at=now()))
            return True

        return await self.db.transaction(work, tries=1)

    async def claim(self, limit: int = 20) -> list[str]:
        """Takes over running sagas whose owner's lease ran out: one conditional UPDATE, so two orchestrators
        can never both claim one saga."""
        moment = now()
        expired = (sa.select(sagas.c.id).where(sagas.c.state.in_(ACTIVE), sagas.c.lease_until < moment)
                   .order_by(sagas.c.lease_until).limit(limit))

        def work(conn: Connection) -> list[str]:
            candidates = [row.id for row in conn.execute(expired)]
            if not candidates:
                return []
            claimed = conn.execute(
                sagas.update().where(sagas.c.id.in_(candidates), sagas.c.lease_until < moment)
                .values(owner=self.owner, lease_until=self._lease_until()).returning(sagas.c.id))
            return [row.id for row in claimed]

        return await self.db.transaction(work, tries=1)

    async def renew(self, saga_ids: list[str]) -> None:
        if saga_ids:
            await self.db.autocommit(lambda conn: conn.execute(
                sagas.update().where(sagas.c.id.in_(saga_ids), sagas.c.owner == self.owner)
                .values(lease_until=self._lease_until())))

    async def release(self) -> None:
        """Lets the leases of a stopping orchestrator lapse now, so another resumes its sagas at once."""
        await self.db.autocommit(lambda conn: conn.execute(
            sagas.update().where(sagas.c.owner == self.owner, sagas.c.state.in_(ACTIVE)).values(lease_until=now())))


def _rows(move: dict[str, Any]) -> list[dict[str, Any]]:
    """A move as ADVANCE_MANY's rows: the saga's values with the first step that ended and the first that starts,
    then one row for each further pair."""
    saga = {k: v for k, v in move.items() if k.startswith("p_")}
    parts = list(itertools.zip_longest(move["finished"], move["started"], fillvalue={}))
    return [{**saga, **ended, **starts} if n == 0 else {"p_id": saga["p_id"], **ended, **starts}
            for n, (ended, starts) in enumerate(parts or [({}, {})])]


def _advance_sqlite(conn: Connection, move: dict[str, Any]) -> bool:
    """One move's statements on SQLite (within the batch's transaction): whether the saga was held."""
    held = conn.execute(ADVANCE.fence, move).rowcount == 1
    if held and move["finished"]:
        conn.execute(ADVANCE.finish, [{"p_id": move["p_id"], **ended} for ended in move["finished"]])
    if held and move["started"]:
        conn.execute(ADVANCE.start_sqlite, [{"p_id": move["p_id"], **starts} for starts in move["started"]])
    return held


def new_record(name: str, saga_id: str, correlation_id: str, business_key: str | None, fingerprint: str,
               input_json: Any, route: str = "v1") -> SagaRecord:
    """A saga starting now, in the current trace (its runs, wherever they happen, link back to it)."""
    moment = now()
    return SagaRecord(saga_id, name, correlation_id, business_key, fingerprint, input_json, RUNNING, "", route,
                      moment, moment, telemetry.traceparent())
