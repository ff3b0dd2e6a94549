"""The typed context every request handler receives: settings, the pool, Redis, the token
issuer. Opened once per process at startup (with bounded retries), closed at shutdown.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import redis.asyncio as aioredis
import redis.exceptions
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
    wait_random_exponential,
)

from agent.errors import Unavailable
from agent.openai_model import OpenAIModel, openai_model
from agent.turn import TurnDeps, TurnLimits, TurnRecord
from quota.core import Limits
from quota.ledger import Ledger
from quota.memory_store import MemoryStore
from quota.prices import micro_units, parse_prices
from quota.redis_store import RedisStore
from quota.redis_store import connect as redis_connect
from quota.service import QuotaService
from service import logs
from service.auth import TokenIssuer
from service.cache import AnswerCache
from service.lifecycle import Lifecycle
from service.live import LiveHub
from service.metrics import Metrics
from service.settings import Settings
from telemetry.db import connect, create_pool
from telemetry.migrate import migrate

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger("wattwise.deps")
turn_log = logging.getLogger("wattwise.turn")

# A database or Redis that is still starting (a container, a failover) gets this long.
STARTUP_RETRY_SECONDS = 30

# Failures after which the same work may succeed on another connection or a moment later:
# a dropped or refused connection, a server restarting, a serialization conflict. A
# cancelled statement (statement_timeout) is not among them: it would only time out again.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)


@dataclass(frozen=True)
class Deps:
    settings: Settings
    pool: asyncpg.Pool
    tokens: TokenIssuer
    quota: QuotaService
    redis: aioredis.Redis | None = None
    model: OpenAIModel | None = None  # None: the offline narrator answers
    answers: AnswerCache = field(default_factory=AnswerCache)
    metrics: Metrics = field(default_factory=Metrics)
    lifecycle: Lifecycle = field(default_factory=lambda: Lifecycle(grace=20.0))
    live: LiveHub = field(default_factory=lambda: LiveHub(None, prefix="ww"))
    # First come, first served for the pool's connections. asyncpg's pool queue lets a
    # newcomer take a connection just handed to a waiter, which then queues again at the
    # back: under load some requests wait hundreds of milliseconds while most wait none.
    # asyncio.Semaphore serves waiters in order, and with one permit per connection the
    # pool itself never has to make anyone wait.
    gate: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "gate", asyncio.Semaphore(self.pool.get_max_size()))

    @functools.cached_property
    def turns(self) -> TurnDeps:
        """What every chat turn of this process is given (turn_deps), built once."""
        return turn_deps(self)

    async def _acquire(self) -> PoolConnectionProxy[asyncpg.Record]:
        # A coroutine function for tenacity: pool.acquire() returns an awaitable context,
        # which tenacity would take for a finished synchronous result.
        return await self.pool.acquire()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
        """A pooled connection, for one request: 503 `database_busy` when none is free within
        the acquire timeout; one that fails its health check is replaced (3 tries at most)."""
        waited = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.db_acquire_timeout):
                await self.gate.acquire()
                try:
                    retrying = transient_retrying(multiplier=0.02, most=0.2)
                    conn: PoolConnectionProxy[asyncpg.Record] = await retrying(self._acquire)
                except BaseException:
                    self.gate.release()
                    raise
        except TimeoutError:
            raise Unavailable(
                "Every database connection is busy; try again in a moment.",
                code="database_busy",
            ) from None
        self.metrics.db_wait_seconds.observe(time.perf_counter() - waited)
        try:
            yield conn
        finally:
            try:
                await self.pool.release(conn)
            finally:
                self.gate.release()


def transient_retrying(*, multiplier: float, most: float, attempts: int = 3) -> AsyncRetrying:
    """Up to `attempts` tries of work that failed on a TRANSIENT_DB_ERRORS error, with
    jittered exponential waits of at most `most` seconds; the last error is raised."""
    return AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=multiplier, max=most),
        retry=retry_if_exception_type(TRANSIENT_DB_ERRORS),
        reraise=True,
    )


def quota_service(
    settings: Settings,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis | None,
    metrics: Metrics | None = None,
) -> QuotaService:
    """Quotas in Redis when it is configured, else in process memory (one process only)."""
    store: RedisStore | MemoryStore = (
        RedisStore(redis_client, prefix=settings.quota_prefix)
        if redis_client is not None
        else MemoryStore()
    )
    limits = Limits(
        daily_tokens=settings.user_daily_tokens,
        monthly_tokens=settings.user_monthly_tokens,
        spend_cap_micro=micro_units(settings.monthly_spend_cap),
        rate_per_minute=settings.rate_per_minute,
        burst=settings.rate_burst,
        lease=timedelta(seconds=settings.reservation_lease_seconds),
    )
    return QuotaService(
        store,
        Ledger(pool),
        prices=parse_prices(settings.model_prices),
        limits=limits,
        observer=metrics,
    )


def build_deps(
    settings: Settings,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis | None,
    *,
    lifecycle: Lifecycle | None = None,
) -> Deps:
    """Everything a request needs, over an open pool and (optionally) Redis."""
    metrics = Metrics(currency=settings.spend_currency)
    quota = quota_service(settings, pool, redis_client, metrics)
    lifecycle = lifecycle or Lifecycle(settings.shutdown_grace_seconds)
    live = LiveHub(redis_client, prefix=settings.quota_prefix, metrics=metrics)
    lifecycle.on_drain.append(live.end_all)
    return Deps(
        settings=settings,
        pool=pool,
        tokens=token_issuer(settings),
        quota=quota,
        redis=redis_client,
        model=chat_model(settings, quota),
        metrics=metrics,
        lifecycle=lifecycle,
        live=live,
    )


def chat_model(settings: Settings, quota: QuotaService) -> OpenAIModel | None:
    """The configured OpenAI-compatible model, or None for the offline narrator."""
    if not settings.llm_configured:
        return None
    return openai_model(
        base_url=settings.openai_base_url,
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        model=settings.model,
        quota=quota,
        timeout=settings.llm_timeout_seconds,
        attempts=settings.llm_attempts,
        first_token_timeout=settings.llm_first_token_seconds,
    )


def turn_deps(deps: Deps) -> TurnDeps:
    """A chat turn's dependencies from the process's: the pool's connections, the model,
    the quota, the settings' limits, the drain deadline (Lifecycle.bounded), and the
    metrics and the log line of each finished turn."""
    s = deps.settings
    limits = TurnLimits(
        gap_cap=timedelta(seconds=s.gap_cap_seconds),
        action_ttl=timedelta(seconds=s.action_ttl_seconds),
        over_budget=s.over_budget,
        spend_currency=s.spend_currency,
        deadline_seconds=s.turn_deadline_seconds,
    )
    return TurnDeps(
        connection=deps.connection,
        model=deps.model,
        quota=deps.quota,
        limits=limits,
        observe=functools.partial(observe_turn, deps.metrics),
        bound=deps.lifecycle.bounded,
    )


def observe_turn(metrics: Metrics, turn: TurnRecord) -> None:
    """A finished turn, counted and timed, and logged as one `event: "turn"` line (the
    user's message only with debug logging on)."""
    branch, mode = turn.branch, turn.mode
    metrics.turns.labels(branch, mode, turn.outcome).inc()
    metrics.turn_seconds.labels(branch, mode).observe(turn.duration_seconds)
    first_text = turn.first_text_seconds
    if first_text is not None:
        metrics.first_text_seconds.labels(branch, mode).observe(first_text)
    facts: dict[str, Any] = {
        "event": "turn",
        "turn_id": turn.turn_id,
        "user_id": str(turn.user_id),
        "household_id": str(turn.household_id),
        "branch": branch,
        "rule": turn.rule,
        "mode": mode,
        "outcome": turn.outcome,
        "degraded": turn.degraded,
        "model": turn.model,
        "prompt_tokens": turn.prompt_tokens,
        "completion_tokens": turn.completion_tokens,
        "cost": turn.cost,
        "currency": turn.currency,
        "first_text_ms": round(first_text * 1000, 1) if first_text is not None else None,
        "duration_ms": round(turn.duration_seconds * 1000, 1),
    }
    if logs.debug_enabled():
        facts["text"] = turn.text  # message bodies only with debug on
    turn_log.info("turn %s: %s/%s %s", turn.turn_id, branch, mode, turn.outcome, extra=facts)


def token_issuer(settings: Settings) -> TokenIssuer:
    if settings.jwt_secret is None:
        raise RuntimeError("no JWT secret: settings were not checked")
    return TokenIssuer(
        secret=settings.jwt_secret.get_secret_value(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )


def _retrying() -> AsyncRetrying:
    return AsyncRetrying(
        stop=stop_after_delay(STARTUP_RETRY_SECONDS),
        wait=wait_exponential_jitter(multiplier=0.2, max=3),
        retry=retry_if_exception_type(
            (OSError, asyncpg.CannotConnectNowError, redis.exceptions.ConnectionError)
        ),
        reraise=True,
    )


async def run_migrations(dsn: str) -> None:
    async for attempt in _retrying():
        with attempt:
            conn = await connect(dsn)
    try:
        applied = await migrate(conn)
        for migration in applied:
            log.info("applied migration %04d_%s", migration.version, migration.name)
    finally:
        await conn.close()


def redis_client(settings: Settings, url: str) -> aioredis.Redis:
    """A client of the Redis at `url` (settings.redis_url) with the settings' pool size,
    timeout and TLS CA."""
    return redis_connect(
        url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout,
        ssl_ca=str(settings.redis_ssl_ca) if settings.redis_ssl_ca else None,
    )


async def open_pool(settings: Settings) -> asyncpg.Pool:
    """The database of `settings`, migrated (retried while it starts), and a pool on it."""
    if settings.database_url is None:
        raise RuntimeError("DATABASE_URL is not set")
    await run_migrations(settings.database_url)
    return await create_pool(settings.database_url, options=settings.pool_options())


@asynccontextmanager
async def open_deps(settings: Settings, lifecycle: Lifecycle | None = None) -> AsyncIterator[Deps]:
    """Migrate, open the pool and Redis, and close them again on the way out."""
    pool = await open_pool(settings)
    client: aioredis.Redis | None = None
    try:
        if settings.redis_url is not None:
            client = redis_client(settings, settings.redis_url)
            async for attempt in _retrying():
                with attempt:
                    await client.ping()
        deps = build_deps(settings, pool, client, lifecycle=lifecycle)
        try:
            yield deps
        finally:
            await deps.live.close()
            if deps.model is not None:
                await deps.model.aclose()
    finally:
        if client is not None:
            await client.aclose()
        await pool.close()
