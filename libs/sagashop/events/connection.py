"""How a relay, a consumer and a rebuild talk to NATS, the same way: no reconnecting inside the client (a broken
connection fails the caller's round, and the caller connects anew after its own pause; this client also retries a
first connection for ever unless its attempts are bounded), the client's own error reports left to the caller's
warning, and streams made or brought to the caller's config. The client is imported as a part first connects, not
with the module: it loads aiohttp whenever that is installed (the lab's), and a part loads nothing of the lab as it
starts (tests/unit/test_layout.py)."""

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext
    from nats.js.api import StreamConfig

CONNECT_SECONDS = 2.0
log = logging.getLogger(__name__)


async def connect(url: str, name: str) -> "Client":
    import nats

    return await nats.connect(url, name=name, allow_reconnect=False, max_reconnect_attempts=1,
                              reconnect_time_wait=0.2, connect_timeout=CONNECT_SECONDS, error_cb=_quiet)


async def close(nc: "Client | None") -> None:
    if nc is not None and not nc.is_closed:
        try:
            await nc.close()
        except Exception as e:  # a connection that broke already: nothing to close
            log.debug("closing the NATS connection: %s", e)


async def ensure_stream(js: "JetStreamContext", config: "StreamConfig") -> None:
    """Makes the stream, or leaves it as it is: the same config again is accepted as it is; another one (an older
    release's) is replaced by ours."""
    from nats.js.errors import BadRequestError

    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.update_stream(config)


async def stop(task: asyncio.Task[None] | None) -> None:
    """Stops a relay or a consumer its part started (None: none was): what it published and had not marked, or
    applied and had not acknowledged, the next one does again (and the duplicate window or the inbox drops)."""
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _quiet(error: Exception) -> None:
    """The client's own report of a failure its caller reports itself, a warning per failed round."""
    log.debug("NATS: %s", error)
