"""The gateway's one connection to the event broker (SAGASHOP_NATS_URL): made when first needed, made again after it
broke, closed when the gateway stops. Two things use it:

- the catalog cache's invalidation: a subscription to `<name>.events.product.changed` and `<name>.events.stock.>`
  (plain NATS subscriptions: they see what the relays publish from now on, and keep no state on the server);
  while it is live the cache answers (catalog_cache.py), and each time it is made the whole cache is dropped, as
  what happened while it was down is unknown;
- the dead-letter routes, through JetStream (sagashop.events.deadletters).

Without SAGASHOP_NATS_URL neither is there: the cache stays off and the dead-letter routes answer 503
`events_unavailable`."""

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sagashop.events import deadletters
from sagashop.events.streams import Streams
from sagashop.kit.errors import DomainError
from sagashop.kit.settings import Settings

from .catalog_cache import CatalogCache

if TYPE_CHECKING:  # the client is imported as the gateway first connects: it loads aiohttp when installed
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

log = logging.getLogger(__name__)
CONNECT_SECONDS = 2  # one attempt to reach the broker
REQUEST_SECONDS = 5.0  # a JetStream request (a dead letter read or replayed)
FIRST_PAUSE, LONGEST_PAUSE = 0.5, 10.0  # between attempts to subscribe again while the broker is away


class EventsUnavailable(DomainError):
    """This gateway has no event broker, or it does not answer (503)."""

    code = "events_unavailable"
    retry_after = 5


class Broker:
    def __init__(self, settings: Settings, cache: CatalogCache) -> None:
        self.url, self.streams, self.cache = settings.nats_url, Streams.of(settings), cache
        self.nc: Client | None = None
        self.lost = asyncio.Event()  # set when the connection `nc` broke or closed
        self.lock = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None
        self.changed: set[str] = set()  # SKUs events named that are not dropped from the cache yet
        self.changed_all = False  # an event that could not be read: drop everything
        self.dropping: asyncio.Task[None] | None = None

    def start(self) -> None:
        if not self.url:
            log.info("SAGASHOP_NATS_URL is not set: the catalog cache is off and dead letters cannot be read")
            return
        self.task = asyncio.create_task(self._follow_catalog(), name="gateway-catalog-events")

    async def close(self) -> None:
        for task in (self.task, self.dropping):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.close()

    @asynccontextmanager
    async def jetstream(self) -> AsyncIterator["JetStreamContext"]:
        """JetStream on the connection, its streams there; a broker away or failing is EventsUnavailable."""
        from nats.errors import Error as NatsError

        if not self.url:
            raise EventsUnavailable("this gateway has no event broker (SAGASHOP_NATS_URL is not set)")
        try:
            js = (await self._connection()).jetstream(timeout=REQUEST_SECONDS)
            await deadletters.ensure_streams(js, self.streams)
            yield js
        except (NatsError, OSError) as e:  # OSError: refused, unreachable, timed out
            log.warning("the event broker failed a request: %s", type(e).__name__)
            raise EventsUnavailable("the event broker does not answer; try again") from e

    async def _connection(self) -> "Client":
        assert self.url, "no broker: start() and jetstream() look first"
        async with self.lock:
            if self.nc is not None and self.nc.is_connected:
                return self.nc
            import nats

            if self.nc is not None:
                await self.nc.close()
            lost = self.lost = asyncio.Event()

            async def broke() -> None:
                self.cache.serving = False
                lost.set()

            # no reconnecting inside the client (it would retry a first connection for ever): a broken connection
            # is closed, and made again by whoever needs it next
            self.nc = await nats.connect(self.url, name="sagashop-gateway", allow_reconnect=False,
                                         max_reconnect_attempts=1, connect_timeout=CONNECT_SECONDS,
                                         error_cb=self._error, disconnected_cb=broke, closed_cb=broke)
            return self.nc

    async def _follow_catalog(self) -> None:
        """Keeps the cache's subscription, and the cache on only while it is live."""
        pause = FIRST_PAUSE
        while True:
            try:
                nc = await self._connection()
                lost = self.lost
                await nc.subscribe(self.streams.subject("product.changed"), cb=self._changed)
                await nc.subscribe(f"{self.streams.events_prefix}.stock.>", cb=self._changed)
                await nc.flush(timeout=CONNECT_SECONDS)  # the server has both: no change after this is missed
                await self.cache.invalidate_all("subscription")
                self.cache.serving, pause = True, FIRST_PAUSE
                log.info("following the catalog's events: the catalog cache is on")
                await lost.wait()
                log.warning("the event broker connection broke: the catalog cache is off until it is back")
            except Exception as e:  # the broker away (refused, timed out, closing): again after a pause
                pause = min(pause * 2, LONGEST_PAUSE)
                log.warning("cannot follow the catalog's events (%s): trying again in %.1f s", type(e).__name__, pause)
            finally:
                self.cache.serving = False
            await asyncio.sleep(pause)

    async def _changed(self, msg: "Msg") -> None:
        """Notes what the event changed, for one task to drop with whatever else came meanwhile: the relays publish
        in rounds, so events come in bursts, dropped in one call to the store rather than one each."""
        if (skus := skus_of(msg.data)) is None:
            self.changed_all = True
        else:
            self.changed |= skus
        if self.dropping is None or self.dropping.done():
            self.dropping = asyncio.create_task(self._drop_changed(), name="gateway-catalog-drops")

    async def _drop_changed(self) -> None:
        while self.changed or self.changed_all:
            skus, self.changed = self.changed, set()
            if self.changed_all:
                self.changed_all = False
                await self.cache.invalidate_all("event")
            else:
                await self.cache.invalidate(skus, "event")

    async def _error(self, error: Exception) -> None:
        from nats.errors import SlowConsumerError

        if isinstance(error, SlowConsumerError):  # the client dropped events it had no room for
            log.warning("the catalog's events came faster than they were read: dropping the whole cache")
            await self.cache.invalidate_all("event")
        else:
            log.debug("NATS: %s", type(error).__name__)  # its text could hold the broker's URL, password and all


def skus_of(data: bytes) -> set[str] | None:
    """The SKUs an event changed (`product.changed`: its sku; `stock.*`: its lines'); None if it cannot be read."""
    try:
        payload = json.loads(data)["payload"]
        return {payload["sku"]} if "sku" in payload else {str(line["sku"]) for line in payload["lines"]}
    except (ValueError, KeyError, TypeError):
        return None
