"""The drain: a source runs on until the deadline, then is cut where it waits (its cleanup
runs) and the farewell is its last item; a source that ends in time is untouched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from service.lifecycle import Lifecycle


def _source(items: int, pause: float, log: list[str]) -> AsyncGenerator[str]:
    async def gen() -> AsyncGenerator[str]:
        try:
            for n in range(items):
                await asyncio.sleep(pause)
                yield f"item {n}"
        finally:
            log.append("cleaned up")

    return gen()


async def _collect(lifecycle: Lifecycle, source: AsyncGenerator[str]) -> list[str]:
    return [item async for item in lifecycle.bounded(source, lambda: "farewell")]


async def test_without_a_drain_every_item_comes_and_no_farewell() -> None:
    log: list[str] = []
    items = await _collect(Lifecycle(grace=0.1), _source(3, 0.01, log))
    assert items == ["item 0", "item 1", "item 2"]
    assert log == ["cleaned up"]


async def test_a_source_still_running_at_the_deadline_is_cut_and_says_farewell() -> None:
    lifecycle = Lifecycle(grace=0.2)
    log: list[str] = []
    collecting = asyncio.create_task(_collect(lifecycle, _source(1000, 0.05, log)))
    await asyncio.sleep(0.12)
    started = asyncio.get_running_loop().time()
    lifecycle.drain()
    items = await asyncio.wait_for(collecting, 2)
    elapsed = asyncio.get_running_loop().time() - started
    assert items[-1] == "farewell"
    assert 2 <= len(items) <= 12  # some before the drain, some during the grace
    assert log == ["cleaned up"]
    assert 0.15 <= elapsed < 2.0


async def test_a_source_that_ends_within_the_grace_is_not_cut() -> None:
    lifecycle = Lifecycle(grace=1.0)
    log: list[str] = []
    collecting = asyncio.create_task(_collect(lifecycle, _source(5, 0.05, log)))
    await asyncio.sleep(0.01)
    lifecycle.drain()
    assert await asyncio.wait_for(collecting, 2) == [f"item {n}" for n in range(5)]


async def test_a_stream_started_after_the_deadline_gets_only_the_farewell() -> None:
    lifecycle = Lifecycle(grace=0.0)
    lifecycle.drain()
    log: list[str] = []
    assert await _collect(lifecycle, _source(3, 0.05, log)) == ["farewell"]
    assert log == ["cleaned up"]


async def test_the_sources_own_timeout_is_not_taken_for_the_deadline() -> None:
    async def times_out() -> AsyncGenerator[str]:
        yield "one"
        async with asyncio.timeout(0.01):
            await asyncio.sleep(1)
        yield "never"

    with pytest.raises(TimeoutError):
        await _collect(Lifecycle(grace=5), times_out())


async def test_drain_callbacks_run_once() -> None:
    lifecycle = Lifecycle(grace=1)
    calls: list[int] = []
    lifecycle.on_drain.append(lambda: calls.append(1))
    lifecycle.drain()
    lifecycle.drain()
    assert calls == [1]
    assert lifecycle.draining.is_set()
