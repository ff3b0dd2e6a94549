"""Quota: reserve the worst case against every budget at once, settle what was used,
exactly once, on every way out; the same contract for Redis and the in-memory twin."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from datetime import timedelta
from uuid import UUID

import asyncpg
import pytest
import redis.asyncio as aioredis

from quota.core import (
    Limits,
    ModelNotPriced,
    QuotaExceeded,
    QuotaUnavailable,
    RateLimited,
    Reservation,
)
from quota.guard import metered
from quota.ledger import Ledger
from quota.memory_store import MemoryStore
from quota.prices import parse_prices
from quota.redis_store import RedisStore
from quota.redis_store import connect as redis_connect
from quota.service import QuotaService
from tests.conftest import redis_url

MODEL = "test-model"
# 1 micro-unit per prompt token, 2 per completion token; at most 100 completion tokens.
PRICES = parse_prices('{"test-model": {"input": 1, "output": 2, "max_tokens": 100}}')
ROOMY = Limits(
    daily_tokens=10**9,
    monthly_tokens=10**9,
    spend_cap_micro=10**12,
    rate_per_minute=1_000_000,
    burst=10_000,
)

Make = Callable[..., QuotaService]


@pytest.fixture(params=["redis", "memory"])
async def make(
    request: pytest.FixtureRequest, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> AsyncIterator[Make]:
    """A factory of quota services over one store (Redis under a fresh prefix, or memory)
    and the test database's ledger."""
    prefix = f"wwtest:{uuid.uuid4().hex[:12]}"
    memory = MemoryStore()

    def build(limits: Limits = ROOMY, *, fresh_store: bool = False) -> QuotaService:
        nonlocal memory
        if request.param == "redis":
            store: RedisStore | MemoryStore = RedisStore(redis_client, prefix=prefix)
        else:
            if fresh_store:
                memory = MemoryStore()
            store = memory
        return QuotaService(store, Ledger(pool), prices=PRICES, limits=limits)

    yield build
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await redis_client.delete(*keys)


async def _reserve(quota: QuotaService, user: UUID, prompt: int = 10, **kw: object) -> Reservation:
    return await quota.reserve(
        user_id=user,
        household_id=None,
        model=MODEL,
        prompt_tokens=prompt,
        **kw,  # type: ignore[arg-type]
    )


async def _ledger(pool: asyncpg.Pool, user: UUID) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch("SELECT * FROM usage_ledger WHERE user_id = $1 ORDER BY id", user)


async def test_a_settled_call_counts_what_it_used_and_holds_nothing(
    make: Make, pool: asyncpg.Pool
) -> None:
    quota = make()
    user = uuid.uuid4()
    r = await _reserve(quota, user, prompt=40, max_tokens=50)
    assert (r.tokens, r.cost_micro) == (90, 40 + 2 * 50)
    held = await quota.store.snapshot(user=user)
    assert (held.user_day.held, held.user_month.held, held.global_month.held) == (90, 90, 140)
    settled = await quota.settle(r, prompt_tokens=40, completion_tokens=7)
    assert settled is not None
    assert settled.cost_micro == 40 + 14
    snap = await quota.store.snapshot(user=user)
    assert (snap.user_day.used, snap.user_day.held) == (47, 0)
    assert (snap.user_month.used, snap.user_month.held) == (47, 0)
    assert snap.global_month.used - held.global_month.used == 54
    [row] = await _ledger(pool, user)
    assert (row["prompt_tokens"], row["completion_tokens"], row["cost_micro"]) == (40, 7, 54)
    assert row["reservation_id"] == r.id
    assert row["model"] == MODEL


async def test_200_concurrent_reservations_admit_only_what_the_budget_holds(
    make: Make, pool: asyncpg.Pool
) -> None:
    # Worst case 10 + 100 = 110 tokens; the daily budget admits five of them.
    quota = make(Limits(550, 10**9, 10**12, 1_000_000, burst=10_000))
    user = uuid.uuid4()
    outcomes = await asyncio.gather(
        *(_reserve(quota, user) for _ in range(200)), return_exceptions=True
    )
    admitted = [o for o in outcomes if isinstance(o, Reservation)]
    refused = [o for o in outcomes if isinstance(o, QuotaExceeded)]
    assert len(admitted) == 5
    assert len(refused) == 195
    assert all(e.limit == "daily" for e in refused)
    rng = random.Random(3)
    used = [(10, rng.randrange(0, 101)) for _ in admitted]
    await asyncio.gather(
        *(
            quota.settle(r, prompt_tokens=p, completion_tokens=c)
            for r, (p, c) in zip(admitted, used, strict=True)
        )
    )
    snap = await quota.store.snapshot(user=user)
    assert snap.user_day.used == sum(p + c for p, c in used)
    assert snap.user_day.held == 0
    rows = await _ledger(pool, user)
    assert sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows) == snap.user_day.used


@pytest.mark.parametrize("limit", ["daily", "monthly", "spend_cap"])
async def test_a_refused_reservation_names_its_limit_and_holds_nothing(
    make: Make, limit: str
) -> None:
    limits = {
        "daily": Limits(100, 10**9, 10**12, 1_000_000, 10_000),
        "monthly": Limits(10**9, 100, 10**12, 1_000_000, 10_000),
        "spend_cap": Limits(10**9, 10**9, 100, 1_000_000, 10_000),
    }[limit]
    quota = make(limits)
    user = uuid.uuid4()
    before = await quota.store.snapshot(user=user)
    with pytest.raises(QuotaExceeded) as refused:
        await _reserve(quota, user)
    assert refused.value.limit == limit
    expected = before.periods.day_end if limit == "daily" else before.periods.month_end
    assert refused.value.resets_at == expected
    after = await quota.store.snapshot(user=user)
    assert after.user_day.held == after.user_month.held == after.global_month.held == 0


async def test_an_unpriced_model_is_refused_before_anything_is_held(make: Make) -> None:
    quota = make()
    user = uuid.uuid4()
    with pytest.raises(ModelNotPriced):
        await quota.reserve(user_id=user, household_id=None, model="free-lunch", prompt_tokens=1)
    snap = await quota.store.snapshot(user=user)
    assert snap.user_day.held == 0


async def test_max_tokens_is_clamped_to_the_models_maximum(make: Make) -> None:
    quota = make()
    r = await _reserve(quota, uuid.uuid4(), prompt=5, max_tokens=10**9)
    assert (r.max_tokens, r.tokens, r.cost_micro) == (100, 105, 5 + 200)
    r = await _reserve(quota, uuid.uuid4(), prompt=5, max_tokens=0)
    assert r.max_tokens == 1


async def test_a_reservation_closes_exactly_once(make: Make, pool: asyncpg.Pool) -> None:
    quota = make()
    user = uuid.uuid4()
    r = await _reserve(quota, user)
    assert await quota.settle(r, prompt_tokens=10, completion_tokens=5) is not None
    assert await quota.settle(r, prompt_tokens=10, completion_tokens=5) is None
    await quota.release(r)
    # Even a second process holding a copy of it cannot charge it again.
    copy = Reservation(**{**r.__dict__, "closed": False})
    await quota.settle(copy, prompt_tokens=10, completion_tokens=50)
    snap = await quota.store.snapshot(user=user)
    assert snap.user_day.used == 15
    assert len(await _ledger(pool, user)) == 1


async def test_a_released_reservation_charges_nothing(make: Make, pool: asyncpg.Pool) -> None:
    quota = make()
    user = uuid.uuid4()
    await quota.release(await _reserve(quota, user))
    snap = await quota.store.snapshot(user=user)
    assert (snap.user_day.used, snap.user_day.held) == (0, 0)
    assert await _ledger(pool, user) == []


async def test_the_rate_limit_allows_a_burst_then_says_when_to_retry(make: Make) -> None:
    quota = make(Limits(10**9, 10**9, 10**12, rate_per_minute=6, burst=3))
    user = uuid.uuid4()
    for _ in range(3):
        await quota.release(await _reserve(quota, user))
    with pytest.raises(RateLimited) as limited:
        await _reserve(quota, user)
    # One request per 10 s: the fourth may come about 10 s after the first.
    assert 8 <= limited.value.retry_after <= 10
    assert limited.value.headers["Retry-After"] == str(limited.value.retry_after)
    snap = await quota.store.snapshot(user=user)
    assert snap.user_day.held == 0
    # Another user is not slowed down.
    await _reserve(quota, uuid.uuid4())


async def test_a_reservation_whose_process_died_lapses_by_itself(make: Make) -> None:
    quota = make(Limits(200, 10**9, 10**12, 1_000_000, 10_000, lease=timedelta(milliseconds=300)))
    user = uuid.uuid4()
    await _reserve(quota, user)  # never settled: its process "died"
    with pytest.raises(QuotaExceeded):
        await _reserve(quota, user)
    await asyncio.sleep(0.4)
    await _reserve(quota, user)
    assert (await quota.store.snapshot(user=user)).user_day.held == 110


async def test_lost_counters_are_rebuilt_from_the_ledger_before_a_reservation(
    make: Make, redis_client: aioredis.Redis
) -> None:
    quota = make()
    user = uuid.uuid4()
    r = await _reserve(quota, user, prompt=30)
    await quota.settle(r, prompt_tokens=30, completion_tokens=70)  # 100 tokens, 170 micro
    spent = (await quota.store.snapshot(user=user)).global_month.used
    # The counters are gone (a Redis restart; a new process for the twin).
    if isinstance(quota.store, RedisStore):
        keys = [k async for k in redis_client.scan_iter(match=f"{quota.store.prefix}:*")]
        await redis_client.delete(*keys)
    rebuilt = make(Limits(150, 10**9, spent + 100, 1_000_000, 10_000), fresh_store=True)
    with pytest.raises(QuotaExceeded) as refused:
        await _reserve(rebuilt, user)  # 100 used + 110 > 150 today
    assert refused.value.limit == "daily"
    with pytest.raises(QuotaExceeded) as refused:
        await _reserve(rebuilt, uuid.uuid4())  # spend: 120 micro more than the cap allows
    assert refused.value.limit == "spend_cap"
    snap = await rebuilt.store.snapshot(user=user)
    assert (snap.user_day.used, snap.user_month.used, snap.global_month.used) == (100, 100, spent)


async def test_a_cancelled_call_releases_or_settles_its_reservation(make: Make) -> None:
    quota = make()
    user = uuid.uuid4()
    entered = asyncio.Event()

    async def call(start: bool) -> None:
        async with metered(
            quota, user_id=user, household_id=None, model=MODEL, prompt_tokens=10
        ) as c:
            if start:
                c.streamed("partial answer text")
            entered.set()
            await asyncio.sleep(60)

    for start in (False, True):
        entered.clear()
        task = asyncio.create_task(call(start))
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    snap = await quota.store.snapshot(user=user)
    assert snap.user_day.held == 0
    # The started call is charged its prompt and an estimate of what streamed (19 bytes).
    assert snap.user_day.used == 10 + 7


async def test_an_error_or_a_closed_generator_closes_the_reservation(make: Make) -> None:
    quota = make()
    user = uuid.uuid4()

    async def stream() -> AsyncGenerator[str]:
        async with metered(
            quota, user_id=user, household_id=None, model=MODEL, prompt_tokens=10
        ) as c:
            for word in ("one ", "two ", "three "):
                c.streamed(word)
                yield word
            c.used(10, 3)

    gen = stream()
    assert await gen.__anext__() == "one "
    await gen.aclose()  # the client went away after one chunk
    with pytest.raises(ValueError, match="refused"):
        async with metered(quota, user_id=user, household_id=None, model=MODEL, prompt_tokens=10):
            raise ValueError("the provider refused the request")
    async for _ in stream():
        pass
    snap = await quota.store.snapshot(user=user)
    assert snap.user_day.held == 0
    assert snap.user_day.used == (10 + 2) + 0 + (10 + 3)


async def test_an_unreachable_redis_refuses_every_reservation(pool: asyncpg.Pool) -> None:
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    try:
        quota = QuotaService(RedisStore(dead), Ledger(pool), prices=PRICES, limits=ROOMY)
        with pytest.raises(QuotaUnavailable) as refused:
            await _reserve(quota, uuid.uuid4())
        assert refused.value.status == 503
        assert refused.value.code == "quota_unavailable"
    finally:
        await dead.aclose()


async def test_two_instances_sharing_redis_never_exceed_a_limit_together(
    pool: asyncpg.Pool,
) -> None:
    prefix = f"wwtest:{uuid.uuid4().hex[:12]}"
    clients = [redis_connect(redis_url()) for _ in range(2)]
    try:
        limits = Limits(10**9, 10**9, 110 * 7, 1_000_000, 10_000)  # spend: 7 worst cases
        services = [
            QuotaService(RedisStore(c, prefix=prefix), Ledger(pool), prices=PRICES, limits=limits)
            for c in clients
        ]
        attempts: list[Awaitable[Reservation]] = [
            _reserve(services[i % 2], uuid.uuid4(), prompt=10) for i in range(60)
        ]
        outcomes = await asyncio.gather(*attempts, return_exceptions=True)
        assert sum(isinstance(o, Reservation) for o in outcomes) == 3  # 210 micro each
    finally:
        keys = [k async for k in clients[0].scan_iter(match=f"{prefix}:*")]
        if keys:
            await clients[0].delete(*keys)
        for c in clients:
            await c.aclose()


async def test_a_reservation_whose_caller_is_cancelled_in_flight_is_given_back(
    pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    # Cancelled after the script went out, the reply finds no one: the store gives the
    # reservation back at once (and keeps serving other calls), not at lease end.
    prefix = f"wwtest:{uuid.uuid4().hex[:12]}"
    store = RedisStore(redis_client, prefix=prefix)
    quota = QuotaService(store, Ledger(pool), prices=PRICES, limits=ROOMY)
    user = uuid.uuid4()
    await quota.release(await _reserve(quota, user))  # counters loaded
    finished = 0
    try:
        for spins in range(40):
            task = asyncio.create_task(_reserve(quota, user))
            for _ in range(spins % 8):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                # Done before the cancellation reached it: the caller has its reservation.
                await quota.release(await task)
                finished += 1
        assert finished < 40  # most calls were cancelled in flight
        async with asyncio.timeout(2):
            while (await store.snapshot(user=user)).user_day.held:  # noqa: ASYNC110 - Redis state
                await asyncio.sleep(0.02)
    finally:
        keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis_client.delete(*keys)
