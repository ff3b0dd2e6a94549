"""The answer cache: one computation for concurrent misses, and waiters that survive the
cancellation or failure of the request computing for them."""

from __future__ import annotations

import asyncio

import pytest

from service.cache import AnswerCache


async def test_concurrent_misses_share_one_computation() -> None:
    cache = AnswerCache()
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return "answer"

    results = await asyncio.gather(
        *(cache.get_or_compute("k", compute, open_window=False) for _ in range(20))
    )
    assert results == ["answer"] * 20
    assert calls == 1
    assert await cache.get_or_compute("k", compute, open_window=False) == "answer"
    assert calls == 1


async def test_waiters_compute_again_when_the_computing_request_is_cancelled() -> None:
    cache = AnswerCache()
    started = asyncio.Event()
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.sleep(0.05)
        return f"answer {calls}"

    first = asyncio.create_task(cache.get_or_compute("k", compute, open_window=True))
    await started.wait()
    waiters = [
        asyncio.create_task(cache.get_or_compute("k", compute, open_window=True)) for _ in range(5)
    ]
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.gather(*waiters) == ["answer 2"] * 5
    assert calls == 2


async def test_a_failed_computation_fails_only_its_own_request() -> None:
    cache = AnswerCache()
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        if attempts == 1:
            raise RuntimeError("database hiccup")
        return "answer"

    results = await asyncio.gather(
        *(cache.get_or_compute("k", flaky, open_window=False) for _ in range(3)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, RuntimeError) for r in results) == 1
    assert results.count("answer") == 2
    assert attempts == 2
