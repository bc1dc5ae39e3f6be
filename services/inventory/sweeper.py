"""Releases the reservations whose saga is gone: a reservation still HELD after the TTL goes back to available
and becomes EXPIRED. A saga that was only held up (its orchestrator down for longer than the TTL) may still come
back: its commit then takes the units again if they are still there, or is refused with out_of_stock, and the
saga compensates; its release marks the reservation RELEASED, so no late commit can take them after that.

Safe with several replicas sweeping at once and with sagas committing and releasing meanwhile: each reservation
leaves HELD in a transaction of its own through one conditional UPDATE, and CommitStock/ReleaseStock lock its row
before they decide, so exactly one of them moves its units.
"""

import asyncio
import logging
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.engine import Connection

from sagashop.events.catalog import StockReleased
from sagashop.kit.clock import now
from sagashop.kit.db import Database

from .repository import Inventory

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(self, db: Database, ttl_seconds: float, batch: int = 500) -> None:
        self.db, self.ttl, self.batch = db, timedelta(seconds=ttl_seconds), batch

    async def sweep(self) -> int:
        """Releases up to `batch` expired reservations, oldest first; returns how many this call released."""
        cutoff = now() - self.ttl
        keys = await self.db.autocommit(lambda conn: Inventory(conn).held_since_before(cutoff, self.batch))
        released = 0
        for key in keys:
            released += await self.db.transaction(partial(self._expire, key=key, cutoff=cutoff))
        return released

    def _expire(self, conn: Connection, key: str, cutoff: datetime) -> bool:
        inventory = Inventory(conn)
        if (expired := inventory.expire(key, cutoff)) is None:
            return False  # committed, released or expired by someone else since we listed it
        inventory.move(expired.lines, "reserved", "available")
        inventory.note(expired, StockReleased, reason="expired")
        log.info("released reservation %s of order %s: held longer than %s", key, expired.order_id, self.ttl)
        return True

    async def sweep_forever(self, interval_seconds: float) -> None:
        """Sweeps every `interval_seconds` until cancelled; a failed sweep is logged and tried again next time."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("sweeping expired reservations failed; trying again in %ss", interval_seconds)
            await asyncio.sleep(interval_seconds)
