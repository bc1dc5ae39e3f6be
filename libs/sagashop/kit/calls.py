"""What the calls made within one unit of work (a saga step's attempt) saw. The gRPC client fills the record of
the unit under way, if there is one; whoever runs the unit reads it afterwards."""

from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType


@dataclass
class CallRecord:
    """How many attempts the calls made, how many of them were retries, and who answered last. Used as a context
    manager, it is the record of the calls made within the block."""

    attempts: int = 0
    retries: int = 0
    handled_by: str = ""
    _token: Token["CallRecord | None"] | None = field(default=None, repr=False, compare=False)

    def __enter__(self) -> "CallRecord":
        self._token = current_record.set(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._token is not None:
            current_record.reset(self._token)


current_record: ContextVar[CallRecord | None] = ContextVar("sagashop_call_record", default=None)
