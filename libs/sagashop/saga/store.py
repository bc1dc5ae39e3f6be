"""The saga log in SQL: one row per saga (state, input, context, lease), one per step and action, and an audit
trail of operator actions. The log alone says where a saga stands, so any orchestrator can resume a run whose
owner died.

A store belongs to one orchestrator (`owner`). Every transition it writes first renews the saga's lease on the
condition that it still holds it: an orchestrator that lost a saga to another (its lease ran out) is fenced off
with LeaseLost instead of writing over the new owner's progress.

Its writes: create, advance (through the group commit), take_over, claim, renew, release."""

import itertools
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from sagashop.kit.batch import GroupCommit
from sagashop.kit.clock import now
from sagashop.kit.db import Database, all_or_nothing, one_statement

from .definition import ACTIVE, NEEDS_ATTENTION
from .records import AuditRecord, Crowded, LeaseLost, Outcome, SagaRecord, StepRecord, from_row
from .tables import (
    ACTIVE_OF_SUBJECT,
    ADVANCE_MANY,
    FENCE,
    FINISH,
    INSERT_SAGA,
    INSERT_SAGA_STARTED,
    MOVE_FIELDS,
    SAGA,
    SAGA_OF_KEY,
    START,
    STEPS,
    saga_audit,
    sagas,
)


class SagaStore:
    def __init__(self, db: Database, owner: str, lease: float) -> None:
        """A saga's creation, and a batch of moves, are one PostgreSQL-only statement each where the database
        takes it (kit.db.one_statement), and else the portable statements, all or nothing."""
        self.db, self.owner, self.lease = db, owner, lease
        self.start = START[db.dialect]
        self.moves = GroupCommit(self._advance_many, key=itemgetter("p_id"))

    def _lease_until(self) -> datetime:
        return now() + timedelta(seconds=self.lease)

    # reads

    async def get(self, saga_id: str) -> SagaRecord | None:
        row = await self.db.autocommit(lambda conn: conn.execute(SAGA, {"p_id": saga_id}).first())
        return from_row(SagaRecord, row) if row else None

    async def of_key(self, business_key: str) -> SagaRecord | None:
        """The saga holding a business key (an idempotency key), if any."""
        row = await self.db.autocommit(lambda conn: conn.execute(SAGA_OF_KEY, {"p_key": business_key}).first())
        return from_row(SagaRecord, row) if row else None

    async def recent(self, state: str | None, limit: int = 100) -> list[SagaRecord]:
        query = sa.select(sagas).order_by(sagas.c.created_at.desc(), sagas.c.id).limit(limit)
        if state:
            query = query.where(sagas.c.state == state)
        rows = await self.db.autocommit(lambda conn: conn.execute(query).all())
        return [from_row(SagaRecord, row) for row in rows]

    async def steps(self, saga_id: str) -> list[StepRecord]:
        rows = await self.db.autocommit(lambda conn: conn.execute(STEPS, {"p_id": saga_id}).all())
        return [from_row(StepRecord, row) for row in rows]

    async def audit(self, saga_id: str) -> list[AuditRecord]:
        query = sa.select(saga_audit).where(saga_audit.c.saga_id == saga_id).order_by(saga_audit.c.id)
        rows = await self.db.autocommit(lambda conn: conn.execute(query).all())
        return [from_row(AuditRecord, row) for row in rows]

    # writes

    async def create(self, record: SagaRecord, *, first: Sequence[tuple[str, str]],
                     at_most: int | None = None) -> tuple[SagaRecord, bool]:
        """Inserts the saga, owned here, with the starts of its `first` (step, action) pairs (Saga.first): its run
        begins with them written. If the saga's business key is taken, writes nothing and returns the saga
        holding it. With `at_most`, raises Crowded (nothing written) if the record's subject has that many active
        sagas already: counted in the same statement (PostgreSQL) or transaction as the insert."""
        row = {"owner": self.owner, "lease_until": self._lease_until(),
               **{f: getattr(record, f) for f in SagaRecord.__dataclass_fields__}}
        try:
            created = await self.db.autocommit(lambda conn: self._create(conn, record, row, first, at_most))
        except IntegrityError:
            if record.business_key is None or (holder := await self.of_key(record.business_key)) is None:
                raise  # the id, not the key, collided: not a repeat
            return holder, False
        if not created:
            raise Crowded(record.subject)
        return record, True

    def _create(self, conn: Connection, record: SagaRecord, row: dict[str, Any],
                first: Sequence[tuple[str, str]], at_most: int | None) -> bool:
        """Whether the saga was created (not if its subject was at `at_most` active sagas)."""
        if one_statement(conn):  # PostgreSQL-only, for throughput: the saga and its first starts in one statement
            return conn.execute(INSERT_SAGA_STARTED, {
                "p_starts": [name for name, _ in first], "p_start_actions": [action for _, action in first],
                "p_started_at": record.created_at, "p_at_most": at_most,
                **{f"p_saga_{k}": v for k, v in row.items()}}).rowcount > 0
        with all_or_nothing(conn):  # portable
            if at_most is not None and conn.execute(
                    ACTIVE_OF_SUBJECT, {"p_subject": record.subject}).scalar_one() >= at_most:
                return False
            conn.execute(INSERT_SAGA, row)
            conn.execute(self.start, [{"p_id": record.id, "p_start": name, "p_start_action": action,
                                       "p_started_at": record.created_at} for name, action in first])
            return True

    async def advance(self, saga_id: str, *, finished: Sequence[Outcome] = (),
                      started: Sequence[tuple[str, str]] = (), state: str | None = None,
                      failure_reason: str = "") -> None:
        """Writes the saga's next move at once: how steps or undos ended, the (name, action) pairs that start now
        (RUNNING, before their calls are made: after a crash the log shows their outcome is unknown), and the
        saga's new state; a saga that stops (ended, or parked for an operator) is let go. The write is fenced: it
        renews the lease only if this orchestrator still holds it, and else writes nothing and raises LeaseLost.
        The move is written with those other runs ask for meanwhile (a group commit: kit/batch.py)."""
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
        """The moves of a batch, all or none: whether each saga was held."""
        return await self.db.autocommit(lambda conn: self._advance_all(conn, moves))

    def _advance_all(self, conn: Connection, moves: list[dict[str, Any]]) -> list[bool]:
        if one_statement(conn):  # PostgreSQL-only, for throughput: the whole batch in one statement
            rows = [row for move in moves for row in _rows(move)]
            arrays = {name: [row.get(name) for row in rows] for name in MOVE_FIELDS}
            arrays["p_result"] = [json.dumps(row["p_result"]) if "p_name" in row else None for row in rows]
            held = set(conn.execute(ADVANCE_MANY, arrays).scalars().all())
            return [move["p_id"] in held for move in moves]
        with all_or_nothing(conn):  # portable: each move's statements
            return [self._advance_one(conn, move) for move in moves]

    def _advance_one(self, conn: Connection, move: dict[str, Any]) -> bool:
        held = conn.execute(FENCE, move).rowcount == 1
        if held and move["finished"]:
            conn.execute(FINISH, [{"p_id": move["p_id"], **ended} for ended in move["finished"]])
        if held and move["started"]:
            conn.execute(self.start, [{"p_id": move["p_id"], **starts} for starts in move["started"]])
        return held

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
    parts: list[tuple[dict[str, Any], dict[str, Any]]] = list(
        itertools.zip_longest(move["finished"], move["started"], fillvalue={}))
    return [{**saga, **ended, **starts} if n == 0 else {"p_id": saga["p_id"], **ended, **starts}
            for n, (ended, starts) in enumerate(parts or [({}, {})])]
