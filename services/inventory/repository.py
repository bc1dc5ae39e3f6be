"""Inventory tables and the queries on them; every function runs inside the caller's unit of work (kit.db). The
statements of the sagas' calls are built once, with bind parameters (`p_*`): building one costs more than
executing it."""

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sagashop.events import outbox
from sagashop.events.catalog import Item, ProductChanged, StockCommitted, StockReleased, StockReserved
from sagashop.kit.clock import now
from sagashop.kit.db import all_or_nothing, insert_if_absent, one_statement
from sagashop.values import Line

from .domain import Product, why_not_taken

metadata = sa.MetaData()
products = sa.Table(
    "products", metadata,
    sa.Column("sku", sa.String, primary_key=True), sa.Column("name", sa.String),
    sa.Column("price_cents", sa.BigInteger), sa.Column("currency", sa.String),
    sa.Column("available", sa.Integer), sa.Column("reserved", sa.Integer), sa.Column("sold", sa.Integer),
)
reservations = sa.Table(
    "reservations", metadata,
    sa.Column("idempotency_key", sa.String, primary_key=True), sa.Column("order_id", sa.String),
    sa.Column("state", sa.String), sa.Column("lines", sa.JSON),
    sa.Column("created_at", sa.DateTime(timezone=True)), sa.Column("updated_at", sa.DateTime(timezone=True)),
)

HELD, COMMITTED, RELEASED, TOMBSTONE = "HELD", "COMMITTED", "RELEASED", "TOMBSTONE"
EXPIRED = "EXPIRED"  # released by the sweeper: held longer than the TTL, its saga presumed gone
# where the units of a reservation sit in each state it can leave
COUNTER = {HELD: "reserved", COMMITTED: "sold"}
P = sa.bindparam
ALL_PRODUCTS = sa.select(products).order_by(products.c.sku)
PRODUCTS = ALL_PRODUCTS.where(products.c.sku.in_(P("p_skus", expanding=True)))
TAKES = {target: products.update().where(products.c.sku == P("p_sku"), products.c.available >= P("p_quantity"))
         .values({"available": products.c.available - P("p_quantity"), target: products.c[target] + P("p_quantity")})
         for target in ("reserved", "sold")}
MOVES = {(source, target): products.update().where(products.c.sku == P("p_sku")).values(
    {source: products.c[source] - P("p_quantity"), target: products.c[target] + P("p_quantity")})
    for source, target in (("reserved", "available"), ("sold", "available"), ("reserved", "sold"))}
RESERVATION = sa.select(reservations).where(reservations.c.idempotency_key == P("p_key"))
LOCKED_RESERVATION = RESERVATION.with_for_update()
ADD_RESERVATION = reservations.insert()
ADD_RESERVATION_IF_ABSENT = insert_if_absent(reservations)  # by dialect
SET_STATE = reservations.update().where(reservations.c.idempotency_key == P("p_key")).values(
    state=P("p_state"), updated_at=P("p_at"))
MOVE_STATE = SET_STATE.where(reservations.c.state == P("p_from")).returning(*reservations.c)
# PostgreSQL only, used by `Inventory.reserve` beside its portable form: a reservation made HELD with all its
# lines' units moved available -> reserved, or nothing at all, in one statement. Its products are locked in SKU
# order first (`locked`, which reads them as they are now) and the reservation is claimed only if every line has
# enough (`enough`), then the units are taken for a claimed one (`took`) and its event written (`event`). Not
# claimed: the SKU of the first line short of units, and how many it has (null: no such product), or none (the key
# is taken).
RESERVE = sa.text(f"""
WITH wanted AS (
    SELECT * FROM unnest(CAST(:p_skus AS varchar[]), CAST(:p_quantities AS integer[])) AS w(sku, quantity)
), locked AS (
    SELECT p.sku, p.available FROM products AS p JOIN wanted AS w ON p.sku = w.sku ORDER BY p.sku FOR UPDATE OF p
), enough AS (
    SELECT count(*) = :p_count AS ok FROM locked AS l JOIN wanted AS w ON l.sku = w.sku WHERE l.available >= w.quantity
), claim AS (
    INSERT INTO reservations (idempotency_key, order_id, state, lines, created_at, updated_at)
    SELECT :p_key, :p_order_id, '{HELD}', CAST(:p_lines AS json), :p_at, :p_at FROM enough WHERE enough.ok
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING idempotency_key
), took AS (
    UPDATE products AS p SET available = p.available - w.quantity, reserved = p.reserved + w.quantity
    FROM wanted AS w, claim WHERE p.sku = w.sku
    RETURNING p.sku
), event AS (
    {outbox.SQL_INSERT} SELECT {outbox.sql_values()} FROM claim
)
SELECT (SELECT count(*) FROM claim) AS claimed, short.sku AS short_sku, short.available AS short_available
FROM (SELECT 1) AS one LEFT JOIN (
    SELECT w.sku, l.available FROM wanted AS w LEFT JOIN locked AS l ON l.sku = w.sku
    WHERE l.sku IS NULL OR l.available < w.quantity ORDER BY w.sku LIMIT 1
) AS short ON true
""")
# stock_committed's envelope made in Python, completed with the reservation's order (and correlation) and lines
_COMMITTED_BODY = """CAST(jsonb_set(jsonb_set(jsonb_set(CAST(:e_body AS jsonb),
    '{payload,order_id}', to_jsonb(moved.order_id)), '{metadata,correlation_id}', to_jsonb(moved.order_id)),
    '{payload,lines}', (SELECT COALESCE(jsonb_agg(jsonb_build_object('sku', line ->> 0,
        'quantity', CAST(line ->> 1 AS integer))), '[]') FROM json_array_elements(moved.lines) AS line)) AS text)"""
# PostgreSQL only, used by `Inventory.commit_held` beside its portable form: a HELD reservation COMMITTED and its
# units moved reserved -> sold in one statement. Its products are locked in SKU order first (`locked`; the update
# touches only rows that came out of it), as `Inventory.move` orders its updates, so two statements moving the same
# products never deadlock; its event (`event`) gets the order and the lines from the reservation. (A
# data-modifying CTE runs to its end whether or not the query reads it.)
COMMIT_HELD = sa.text(f"""
WITH moved AS (
    UPDATE reservations SET state = '{COMMITTED}', updated_at = :p_at
    WHERE idempotency_key = :p_key AND state = '{HELD}'
    RETURNING idempotency_key, order_id, state, lines
), wanted AS (
    SELECT line ->> 0 AS sku, CAST(line ->> 1 AS integer) AS quantity
    FROM moved, json_array_elements(moved.lines) AS line
), locked AS (
    SELECT p.sku FROM products AS p JOIN wanted AS w ON p.sku = w.sku ORDER BY p.sku FOR UPDATE OF p
), units AS (
    UPDATE products AS p SET reserved = p.reserved - w.quantity, sold = p.sold + w.quantity
    FROM wanted AS w, locked AS l WHERE p.sku = w.sku AND l.sku = p.sku
    RETURNING p.sku
), event AS (
    {outbox.SQL_INSERT} SELECT {outbox.sql_values(_COMMITTED_BODY)} FROM moved
)
SELECT idempotency_key, order_id, state, lines FROM moved
""").columns(*(reservations.c[name] for name in ("idempotency_key", "order_id", "state", "lines")))


@dataclass(frozen=True)
class Reservation:
    key: str
    order_id: str
    state: str
    lines: tuple[Line, ...]


class Inventory:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.one_statement = one_statement(conn)

    def products(self, skus: list[str] | None = None) -> list[Product]:
        rows = self.conn.execute(PRODUCTS, {"p_skus": skus}) if skus else self.conn.execute(ALL_PRODUCTS)
        return [Product(**row._mapping) for row in rows]

    def product(self, sku: str) -> Product | None:
        found = self.products([sku])
        return found[0] if found else None

    def upsert(self, p: Product, *, only_if_absent: bool) -> Product:
        current = self.product(p.sku)
        fields = {"name": p.name, "price_cents": p.price_cents, "currency": p.currency, "available": p.available}
        if current is None:
            self.conn.execute(products.insert().values(sku=p.sku, reserved=0, sold=0, **fields))
        elif not only_if_absent:
            self.conn.execute(products.update().where(products.c.sku == p.sku).values(**fields))
        stored = self.product(p.sku)
        assert stored is not None  # written just above, in this transaction
        if current is None or not only_if_absent:
            outbox.write(self.conn, outbox.event(ProductChanged(**asdict(stored)), stored.sku,
                                                 causation_id="UpsertProduct"))
        return stored

    def take(self, line: Line, into: str = "reserved") -> bool:
        """Moves units available -> `into` (reserved, or sold) if enough are available: one conditional
        statement, so two concurrent takes can never both pass the check."""
        result = self.conn.execute(TAKES[into], {"p_sku": line.sku, "p_quantity": line.quantity})
        return result.rowcount == 1

    def take_all(self, lines: tuple[Line, ...], into: str = "reserved") -> None:
        """Takes every line's units into `into`, or raises the refusal of the first line short of them (the caller
        rolls back what the lines before it took)."""
        for line in sorted(lines, key=lambda x: x.sku):  # one lock order: no deadlock between two takers
            if not self.take(line, into):
                product = self.product(line.sku)
                raise why_not_taken(line, None if product is None else product.available)

    def move(self, lines: tuple[Line, ...], source: str, target: str) -> None:
        for line in sorted(lines, key=lambda x: x.sku):  # one lock order: no deadlock between two movers
            self.conn.execute(MOVES[source, target], {"p_sku": line.sku, "p_quantity": line.quantity})

    def reservation(self, key: str) -> Reservation | None:
        return _reservation(self.conn.execute(RESERVATION, {"p_key": key}).first())

    def add_reservation(self, r: Reservation) -> Reservation:
        self.conn.execute(ADD_RESERVATION, _row(r))
        return r

    def reserve(self, r: Reservation) -> Reservation | None:
        """Adds the HELD reservation `r` and moves its lines' units available -> reserved, all or nothing: None if
        it did; the reservation already holding its key if there is one (nothing done); raises the refusal if a
        line is short (nothing done). A reservation is never deleted, so a key once taken stays taken."""
        if self.one_statement:
            return self._reserve_in_one_statement(r)
        with all_or_nothing(self.conn):  # the portable form: an insert, a conditional update per line, the event
            if not self.add_reservation_if_absent(r):
                return self._holder(r.key)
            self.take_all(r.lines)
            self.note(r, StockReserved)
            return None

    def _reserve_in_one_statement(self, r: Reservation) -> Reservation | None:
        """`reserve` on PostgreSQL in one statement (RESERVE): kept for throughput, as it is the first write of
        every checkout: one round trip instead of the portable form's BEGIN, insert, update per line and COMMIT."""
        row = _row(r)
        outbox.written(self.conn)
        result = self.conn.execute(RESERVE, {
            "p_skus": [line.sku for line in r.lines], "p_quantities": [line.quantity for line in r.lines],
            "p_count": len(r.lines), "p_key": r.key, "p_order_id": r.order_id, "p_lines": json.dumps(row["lines"]),
            "p_at": row["created_at"], **_event(r, StockReserved).params()}).one()
        if result.claimed:
            return None
        if result.short_sku is None:  # every line had enough: the insert found the key taken
            return self._holder(r.key)
        if (holder := self.reservation(r.key)) is not None:  # a repeat finds its first answer, short line or not
            return holder
        raise why_not_taken(next(line for line in r.lines if line.sku == result.short_sku), result.short_available)

    def _holder(self, key: str) -> Reservation:
        """The reservation holding a key found taken (one is never deleted)."""
        holder = self.reservation(key)
        assert holder is not None, f"no reservation {key!r}"
        return holder

    def add_reservation_if_absent(self, r: Reservation) -> bool:
        """Adds the reservation in one statement, unless one with its key is there already (then False). A
        concurrent one with the key is waited for: if it commits, this finds it; if it rolls back, this adds."""
        return self.conn.execute(ADD_RESERVATION_IF_ABSENT[self.conn.dialect.name], _row(r)).first() is not None

    def set_state(self, r: Reservation, state: str) -> Reservation:
        self.conn.execute(SET_STATE, {"p_key": r.key, "p_state": state, "p_at": now()})
        return Reservation(r.key, r.order_id, state, r.lines)

    def commit_held(self, key: str) -> Reservation | None:
        """Moves the reservation HELD -> COMMITTED and its units reserved -> sold, all or nothing, if it is HELD:
        the reservation it committed, or None. On PostgreSQL in one statement (COMMIT_HELD), kept for throughput
        as every checkout commits its stock: one round trip instead of the portable form's BEGIN, update, update
        per line and COMMIT."""
        if self.one_statement:
            outbox.written(self.conn)
            completed = _event(Reservation(key, "", COMMITTED, ()), StockCommitted)  # order and lines: the row's
            return _reservation(self.conn.execute(COMMIT_HELD, {"p_key": key, "p_at": now(),
                                                                **completed.params()}).first())
        with all_or_nothing(self.conn):  # the portable form: a conditional update, then one per line, the event
            if (committed := self.move_state(key, HELD, COMMITTED)) is not None:
                self.move(committed.lines, "reserved", "sold")
                self.note(committed, StockCommitted)
            return committed

    def take_again(self, key: str, into: str) -> Reservation | None:
        """For a saga that came back after the sweeper gave its reservation's units back (EXPIRED: presumed gone,
        only held up): its units taken again from available, all or nothing, into reserved (the reservation HELD
        anew, for another TTL) or into sold (COMMITTED). None if it is not EXPIRED (any more); raises out_of_stock
        (nothing done) if a line's units were sold meanwhile, so the saga compensates at once."""
        with all_or_nothing(self.conn):
            if (again := self.move_state(key, EXPIRED, HELD if into == "reserved" else COMMITTED)) is not None:
                self.take_all(again.lines, into)
                if again.state == HELD:
                    self.conn.execute(reservations.update().where(reservations.c.idempotency_key == key)
                                      .values(created_at=now()))
                self.note(again, StockReserved if again.state == HELD else StockCommitted)
            return again

    def release(self, r: Reservation) -> Reservation:
        """Gives a HELD or COMMITTED reservation's units back to available and makes it RELEASED, with its event,
        in the caller's transaction."""
        self.move(r.lines, COUNTER[r.state], "available")
        released = self.set_state(r, RELEASED)
        self.note(released, StockReleased, reason="released")
        return released

    def note(self, r: Reservation, kind: type[StockReserved | StockReleased | StockCommitted],
             **extra: str) -> None:
        """Writes the reservation's event of `kind`, in the caller's transaction."""
        outbox.write(self.conn, _event(r, kind, **extra))

    def move_state(self, key: str, source: str, target: str) -> Reservation | None:
        """Moves the reservation from state `source` to `target` if it is in `source`: one conditional statement
        (it locks the row, so of a commit and a sweeper only one moves it), the reservation it moved, or None."""
        return _reservation(self.conn.execute(
            MOVE_STATE, {"p_key": key, "p_from": source, "p_state": target, "p_at": now()}).first())

    def held_since_before(self, cutoff: datetime, limit: int) -> list[str]:
        """Keys of the reservations still HELD that were made before `cutoff`, oldest first."""
        query = (sa.select(reservations.c.idempotency_key)
                 .where(reservations.c.state == HELD, reservations.c.created_at < cutoff)
                 .order_by(reservations.c.created_at).limit(limit))
        return list(self.conn.scalars(query).all())

    def expire(self, key: str, cutoff: datetime) -> Reservation | None:
        """Marks the reservation EXPIRED if it is still HELD and was made before `cutoff`; None if it was not.
        One conditional statement, so of two sweepers only one wins; commit and release lock the row first
        (`reservation_for_update`, `move_state`), so they either finish before this or see EXPIRED."""
        result = self.conn.execute(
            reservations.update()
            .where(reservations.c.idempotency_key == key, reservations.c.state == HELD,
                   reservations.c.created_at < cutoff)
            .values(state=EXPIRED, updated_at=now())
        )
        return self.reservation(key) if result.rowcount == 1 else None

    def reservation_for_update(self, key: str) -> Reservation | None:
        """The reservation, its row locked until the transaction ends (PostgreSQL; SQLite's BEGIN IMMEDIATE
        already serializes writers), so a decision taken on its state still holds when the units move."""
        return _reservation(self.conn.execute(LOCKED_RESERVATION, {"p_key": key}).first())


def _reservation(row: sa.Row[Any] | None) -> Reservation | None:
    if row is None:
        return None
    return Reservation(row.idempotency_key, row.order_id, row.state,
                       tuple(Line(sku, quantity) for sku, quantity in row.lines))


def _event(r: Reservation, kind: type[StockReserved | StockReleased | StockCommitted], **extra: str) -> outbox.Event:
    lines = [Item(sku=line.sku, quantity=line.quantity) for line in r.lines]
    return outbox.event(kind(reservation_id=r.key, order_id=r.order_id, lines=lines, **extra), r.key,
                        correlation_id=r.order_id or None, causation_id=r.key)


def _row(r: Reservation) -> dict[str, object]:
    moment = now()
    return {"idempotency_key": r.key, "order_id": r.order_id, "state": r.state,
            "lines": [[line.sku, line.quantity] for line in r.lines], "created_at": moment, "updated_at": moment}
