"""Group commit: writes that concurrent callers ask for while one is under way go to the database together.

A caller whose write finds nothing under way writes it at once, alone: one caller at a time waits no longer than
it would without a batch. Writes asked for meanwhile wait, and go together in the next flush, so that N callers
cost one statement and one commit instead of N. Each caller gets its own write's answer, or the flush's error."""

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")
Flush = Callable[[list[Item]], Awaitable[list[Answer]]]  # the answers in the items' order


class GroupCommit(Generic[Item, Answer]):
    def __init__(self, flush: Flush[Item, Answer], key: Callable[[Item], Hashable], most: int = 64) -> None:
        """`flush` writes a batch; `key` names what an item writes to: a batch holds one item per key (a second
        waits for the next flush, so two writes to one row never meet in one statement); at most `most` items."""
        self.flush, self.key, self.most = flush, key, most
        self.waiting: list[tuple[Item, asyncio.Future[Answer]]] = []
        self.flushing = False
        self.task: asyncio.Task[None] | None = None  # the flush of waiting writes under way (the loop keeps only
        # a weak reference to a task)

    async def write(self, item: Item) -> Answer:
        if self.flushing:  # the next flush takes it
            answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
            self.waiting.append((item, answer))
            return await answer
        self.flushing = True
        try:
            return (await self.flush([item]))[0]
        finally:
            self._next()

    def _next(self) -> None:
        """Starts the flush of what waits (in a task of its own: the caller that just flushed goes on), or idles."""
        batch: list[tuple[Item, asyncio.Future[Answer]]] = []
        rest: list[tuple[Item, asyncio.Future[Answer]]] = []
        keys: set[Hashable] = set()
        for item, answer in self.waiting:
            if answer.done():  # its caller was cancelled
                continue
            if len(batch) < self.most and (key := self.key(item)) not in keys:
                keys.add(key)
                batch.append((item, answer))
            else:
                rest.append((item, answer))
        self.waiting = rest
        self.flushing = bool(batch)
        self.task = asyncio.get_running_loop().create_task(self._flush(batch)) if batch else None

    async def _flush(self, batch: list[tuple[Item, asyncio.Future[Answer]]]) -> None:
        try:
            answers = await self.flush([item for item, _ in batch])
        except BaseException as error:  # noqa: BLE001 - every caller of the batch gets it
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(error)
            if not isinstance(error, Exception):
                raise
        else:
            for (_, answer), value in zip(batch, answers, strict=True):
                if not answer.done():
                    answer.set_result(value)
        finally:
            self._next()
