"""Dead letters: the events a consumer gave up on, each a message of the dead-letter stream with why in its
headers; an operator lists them and sends one back to its consumer (`replay`), which applies it as any event (its
inbox skips it if it was applied meanwhile). Used by the consumers and by the gateway's admin routes."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import connection
from .streams import MAX_AGE, Streams

if TYPE_CHECKING:  # the client is imported by whoever connects: see connection.py
    from nats.js import JetStreamContext

KEEP = MAX_AGE  # as long as the events stream keeps an event: a letter is no use after its event is gone
MAX_LETTERS = 10_000  # beyond, the oldest go first: a flood of failures cannot fill the broker's disk
# the headers of a dead letter (its data is the event's message as it was delivered)
CONSUMER, EVENT_ID, EVENT_TYPE = "Sagashop-Consumer", "Sagashop-Event-Id", "Sagashop-Event-Type"
ERROR, DELIVERIES, FAILED_AT = "Sagashop-Error", "Sagashop-Deliveries", "Sagashop-Failed-At"
REPLAY = "Sagashop-Replay"  # on a replayed message: the id of the dead letter it came from
MSG_ID = "Nats-Msg-Id"


@dataclass(frozen=True)
class DeadLetter:
    id: str  # its sequence in the dead-letter stream
    consumer: str
    event_id: str
    event_type: str
    error: str
    deliveries: int
    failed_at: str  # RFC 3339


async def ensure_streams(js: "JetStreamContext", streams: Streams) -> None:
    """Creates the dead-letter and replay streams, or leaves them as they are (the same config again is
    accepted as it is; another one, an older release's, is replaced by ours)."""
    from nats.js.api import DiscardPolicy, StorageType, StreamConfig

    for config in (
        StreamConfig(name=streams.dead_letters, subjects=[f"{streams.name}.dead.>"], storage=StorageType.FILE,
                     max_age=KEEP.total_seconds(), max_msgs=MAX_LETTERS, discard=DiscardPolicy.OLD),
        StreamConfig(name=streams.replays, subjects=[f"{streams.name}.replay.>"], storage=StorageType.FILE,
                     max_age=KEEP.total_seconds()),
    ):
        await connection.ensure_stream(js, config)


async def list_dead_letters(js: "JetStreamContext", streams: Streams, limit: int = 1000) -> list[DeadLetter]:
    """The dead letters, oldest first, at most `limit`; none when the stream is not there yet."""
    from nats.js.errors import NotFoundError

    letters: list[DeadLetter] = []
    seq = 1
    while len(letters) < limit:
        try:  # the next letter at or after `seq` (replayed ones are deleted: sequences have gaps)
            msg = await js.get_msg(streams.dead_letters, seq=seq, subject=f"{streams.name}.dead.>", next=True)
        except NotFoundError:
            break
        headers = msg.headers or {}
        letters.append(DeadLetter(
            id=str(msg.seq), consumer=headers.get(CONSUMER, ""), event_id=headers.get(EVENT_ID, ""),
            event_type=headers.get(EVENT_TYPE, ""), error=headers.get(ERROR, ""),
            deliveries=int(headers.get(DELIVERIES, "0") or 0), failed_at=headers.get(FAILED_AT, "")))
        seq = int(msg.seq or seq) + 1
    return letters


async def replay(js: "JetStreamContext", streams: Streams, id: str) -> bool:
    """Sends dead letter `id` back to its consumer, through the replay stream, and deletes it; False when there is
    no such letter. Its `Nats-Msg-Id` is the letter's, so a replay repeated after a failure is stored once."""
    from nats.js.errors import NotFoundError

    if not id.isdigit() or not 0 < int(id) < 1 << 63:
        return False
    try:
        msg = await js.get_msg(streams.dead_letters, seq=int(id))
    except NotFoundError:
        return False
    headers = msg.headers or {}
    consumer = headers.get(CONSUMER)
    if not consumer:  # not a letter a consumer wrote
        return False
    sent = {MSG_ID: f"replay.{id}", REPLAY: id}
    if parent := headers.get("traceparent"):
        sent["traceparent"] = parent
    await js.publish(streams.replay_subject(consumer), msg.data or b"", stream=streams.replays, headers=sent)
    await js.delete_msg(streams.dead_letters, int(id))
    return True
