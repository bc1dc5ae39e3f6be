"""The saga log's tables and the statements that write them, built once with bind parameters (building a statement
costs several times what executing it does). The schema itself is in services/orchestrator/migrations.

`p_*` parameters: the saga (p_id, p_owner, ...), a step that ended (p_name, p_action, p_status, ...), a step that
starts (p_start, p_start_action, p_started_at). The portable statements run on both databases; the two marked
PostgreSQL-only do the same work in one statement, for throughput (SagaStore picks them on PostgreSQL)."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .definition import COMPENSATING, NEEDS_ATTENTION, RUNNING
from .records import STEP_RUNNING

metadata = sa.MetaData()
sagas = sa.Table(
    "sagas", metadata, sa.Column("id", sa.String, primary_key=True), sa.Column("name", sa.String),
    sa.Column("correlation_id", sa.String), sa.Column("business_key", sa.String), sa.Column("fingerprint", sa.String),
    sa.Column("input", sa.JSON), sa.Column("state", sa.String), sa.Column("failure_reason", sa.String),
    sa.Column("context", sa.JSON), sa.Column("owner", sa.String),
    sa.Column("lease_until", sa.DateTime(timezone=True)), sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True)), sa.Column("traceparent", sa.String),
    sa.Column("subject", sa.String),
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
p, TEXT, MOMENT = sa.bindparam, sa.String, sa.DateTime(timezone=True)

SAGA = sa.select(sagas).where(sagas.c.id == p("p_id"))
SAGA_OF_KEY = sa.select(sagas).where(sagas.c.business_key == p("p_key"))
_ACTIVE = sa.select(sa.func.count()).select_from(sagas).where(
    sagas.c.state.in_((RUNNING, COMPENSATING, NEEDS_ATTENTION)))
ACTIVE_OF_SUBJECT = _ACTIVE.where(sagas.c.subject == p("p_subject"))
STEPS = sa.select(saga_steps).where(saga_steps.c.saga_id == p("p_id")).order_by(saga_steps.c.id)
INSERT_SAGA = sagas.insert()

# A move of one saga, portable: the fence (renews the lease only if this owner still holds it), then its steps.
FENCE = sagas.update().where(sagas.c.id == p("p_id"), sagas.c.owner == p("p_owner")).values(
    owner=p("p_owner_after"), lease_until=p("p_lease_until"),
    state=sa.func.coalesce(p("p_state", type_=TEXT), sagas.c.state),
    updated_at=sa.func.coalesce(p("p_updated_at", type_=MOMENT), sagas.c.updated_at),
    failure_reason=sa.func.coalesce(p("p_failure_reason", type_=TEXT), sagas.c.failure_reason))
FINISH = saga_steps.update().where(
    (saga_steps.c.saga_id == p("p_id")) & (saga_steps.c.name == p("p_name")) & (saga_steps.c.action == p("p_action"))
).values(status=p("p_status"), attempts=saga_steps.c.attempts + p("p_attempts", type_=sa.Integer),
         error=p("p_error"), result=p("p_result"), finished_at=p("p_finished_at"),
         handled_by=sa.func.coalesce(sa.func.nullif(p("p_handled_by", type_=TEXT), ""), saga_steps.c.handled_by))
NEW_STEP = {"saga_id": p("p_id"), "name": p("p_start", type_=TEXT), "action": p("p_start_action", type_=TEXT),
            "status": STEP_RUNNING, "attempts": 0, "handled_by": "", "error": "",
            "started_at": p("p_started_at", type_=MOMENT)}


def _restart(insert: Any) -> Any:
    """A step's row goes RUNNING: a new one, or the one a resumed run or an operator's retry runs again. Both
    databases spell the upsert alike, each with its own dialect's insert."""
    return insert.on_conflict_do_update(index_elements=[saga_steps.c.saga_id, saga_steps.c.name, saga_steps.c.action],
                                        set_={"status": STEP_RUNNING, "finished_at": None})


START = {"sqlite": _restart(sqlite.insert(saga_steps).values(NEW_STEP)),
         "postgresql": _restart(postgresql.insert(saga_steps).values(NEW_STEP))}


def _starts_of(saga_id: Any) -> Any:
    """The starts of steps (the arrays p_starts and p_start_actions, one step at each index) of the saga whose id
    the column `saga_id` (of a CTE) holds."""
    names = sa.ARRAY(sa.String)
    starts = sa.func.unnest(p("p_starts", type_=names), p("p_start_actions", type_=names)
                            ).table_valued("name", "action").render_derived()
    given = {"saga_id": saga_id, "name": starts.c.name, "action": starts.c.action}
    row = sa.select(*(given.get(k, v if isinstance(v, sa.BindParameter) else sa.literal(v))
                      for k, v in NEW_STEP.items())).select_from(saga_id.table.join(starts, sa.true()))
    return _restart(postgresql.insert(saga_steps).from_select(list(NEW_STEP), row))


# PostgreSQL-only: a new saga and its first stage's starts, one statement (the saga's columns as p_saga_<column>),
# unless its subject has p_at_most active sagas already (p_at_most NULL: no limit); it writes no step then.
# Portable: ACTIVE_OF_SUBJECT, then INSERT_SAGA and START, in one transaction.
_UNDER_LIMIT = sa.or_(p("p_at_most", type_=sa.Integer).is_(None), _ACTIVE.where(
    sagas.c.subject == p("p_saga_subject", type_=sagas.c.subject.type)).scalar_subquery() < p("p_at_most"))
INSERT_SAGA_STARTED = _starts_of(postgresql.insert(sagas).from_select(
    [c.name for c in sagas.c], sa.select(*(p(f"p_saga_{c.name}", type_=c.type) for c in sagas.c)).where(_UNDER_LIMIT)
).returning(sagas.c.id).cte("saga").c.id)

# PostgreSQL-only: the moves of several sagas in one statement, each fenced as FENCE is. Portable: FENCE, FINISH and
# START for each move, in one transaction. `moves` unpacks one array per parameter, one row per index: a move's
# first row holds the saga's p_* values, each further row of the same saga (p_owner NULL: not fenced again) one
# more step that ended and one more that starts; NULL where a row has no such part. `held` is the fence, and steps
# are written only for a saga in it; the statement returns the ids of the sagas held. Plain SQL: SQLAlchemy's Core
# has no form for UPDATE ... FROM unnest(...).
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
