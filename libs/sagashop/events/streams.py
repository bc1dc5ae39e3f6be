"""The names of a shop's streams and subjects on its broker, all from one word (SAGASHOP_EVENTS_NAME): so shops
that share a NATS server (the tests' shops, say) keep to their own.

- `<NAME>_EVENTS`, subjects `<name>.events.<event_type>`: every domain event, published by the relays;
- `<NAME>_DEAD_LETTERS`, subjects `<name>.dead.<consumer>`: each event a consumer gave up on, with why;
- `<NAME>_REPLAYS`, subjects `<name>.replay.<consumer>`: dead letters an operator sent back to their consumer.
"""

from dataclasses import dataclass
from datetime import timedelta

from sagashop.kit.settings import Settings

MAX_AGE = timedelta(days=7)  # how long the events stream keeps an event for consumers that were away


@dataclass(frozen=True)
class Streams:
    name: str = "sagashop"

    @classmethod
    def of(cls, settings: Settings) -> "Streams":
        return cls(settings.events_name)

    @property
    def events(self) -> str:
        return f"{self.name.upper()}_EVENTS"

    @property
    def events_prefix(self) -> str:
        return f"{self.name}.events"

    def subject(self, event_type: str) -> str:
        return f"{self.events_prefix}.{event_type}"

    @property
    def dead_letters(self) -> str:
        return f"{self.name.upper()}_DEAD_LETTERS"

    def dead_subject(self, consumer: str) -> str:
        return f"{self.name}.dead.{consumer}"

    @property
    def replays(self) -> str:
        return f"{self.name.upper()}_REPLAYS"

    def replay_subject(self, consumer: str) -> str:
        return f"{self.name}.replay.{consumer}"


DEFAULT_STREAMS = Streams()  # a shop's names when SAGASHOP_EVENTS_NAME is unset
