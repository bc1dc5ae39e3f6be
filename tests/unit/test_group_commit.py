"""GroupCommit: a write alone goes at once; writes asked for meanwhile go together, each with its own answer."""

import asyncio

import pytest

from sagashop.kit.batch import GroupCommit


class Store:
    """A flush that takes a while and records each batch; it fails a batch holding 'boom'."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.gate = asyncio.Event()

    async def flush(self, items: list[tuple[str, int]]) -> list[str]:
        self.batches.append(items)
        await self.gate.wait()
        if any(value == "boom" for _, value in items):
            raise RuntimeError("the database is gone")
        return [f"{key}={value}" for key, value in items]


def group(store: Store, most: int = 64) -> GroupCommit:
    return GroupCommit(store.flush, key=lambda item: item[0], most=most)


async def test_a_write_alone_goes_at_once_and_gets_its_answer():
    store = Store()
    store.gate.set()
    assert await group(store).write(("a", 1)) == "a=1"
    assert store.batches == [[("a", 1)]]


async def test_writes_asked_for_meanwhile_go_together_in_the_next_flush_each_with_its_own_answer():
    store = Store()
    commit = group(store)
    first = asyncio.create_task(commit.write(("a", 1)))
    await asyncio.sleep(0)  # the first flush is under way
    rest = [asyncio.create_task(commit.write((key, 2))) for key in "bcd"]
    await asyncio.sleep(0)
    store.gate.set()

    assert await first == "a=1"
    assert await asyncio.gather(*rest) == ["b=2", "c=2", "d=2"]
    assert store.batches == [[("a", 1)], [("b", 2), ("c", 2), ("d", 2)]]


async def test_two_writes_to_one_key_never_share_a_flush_and_keep_their_order():
    store = Store()
    commit = group(store, most=2)
    first = asyncio.create_task(commit.write(("a", 1)))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(commit.write(item)) for item in (("a", 2), ("b", 2), ("a", 3), ("c", 2))]
    await asyncio.sleep(0)
    store.gate.set()

    await first
    assert await asyncio.gather(*waiting) == ["a=2", "b=2", "a=3", "c=2"]
    assert store.batches == [[("a", 1)], [("a", 2), ("b", 2)], [("a", 3), ("c", 2)]]  # at most 2, one per key


async def test_a_failed_flush_fails_each_of_its_writes_and_the_next_ones_still_go():
    store = Store()
    commit = group(store)
    first = asyncio.create_task(commit.write(("a", 1)))
    await asyncio.sleep(0)
    doomed = [asyncio.create_task(commit.write(item)) for item in (("b", "boom"), ("c", 1))]
    await asyncio.sleep(0)
    store.gate.set()

    assert await first == "a=1"
    for task in doomed:
        with pytest.raises(RuntimeError, match="the database is gone"):
            await task
    assert await commit.write(("d", 1)) == "d=1"


async def test_a_cancelled_caller_leaves_the_batch_to_the_others():
    store = Store()
    commit = group(store)
    first = asyncio.create_task(commit.write(("a", 1)))
    await asyncio.sleep(0)
    gone, kept = asyncio.create_task(commit.write(("b", 1))), asyncio.create_task(commit.write(("c", 1)))
    await asyncio.sleep(0)
    gone.cancel()
    store.gate.set()

    assert (await first, await kept) == ("a=1", "c=1")
    assert store.batches == [[("a", 1)], [("c", 1)]]
