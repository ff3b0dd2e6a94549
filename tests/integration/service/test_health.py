"""Liveness and readiness: /readyz reports each dependency and answers 503 when one is
down, the schema is behind, the rollups lag past their bound, or the process drains."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

import httpx
import pytest
import redis.asyncio as aioredis

from service.app import create_app
from service.deps import Deps
from telemetry.rollups import refresh_all


@pytest.fixture
async def refreshed(deps: Deps) -> Deps:
    """Deps over a database whose rollups were just refreshed."""
    async with deps.pool.acquire() as conn:
        await refresh_all(conn, cap=timedelta(minutes=15))
    return deps


async def _get(deps: Deps, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(deps=deps))
    async with httpx.AsyncClient(transport=transport, base_url="http://wattwise.test") as c:
        return await c.get(path)


async def test_healthz_answers_without_dependencies(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ready_with_database_migrations_rollups_and_redis(
    refreshed: Deps,
) -> None:
    response = await _get(refreshed, "/readyz")
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert response.json()["status"] == "ready"
    assert checks["lifecycle"] == "serving"
    assert (checks["database"], checks["migrations"], checks["redis"]) == ("ok", "current", "ok")
    assert checks["rollups"].startswith("ok: lag ")
    assert checks["rollups"].endswith("(at most 1800 s)")


async def test_readyz_is_not_ready_before_the_first_refresh(deps: Deps) -> None:
    response = await _get(deps, "/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["rollups"] == "never refreshed"


async def test_readyz_refuses_rollups_lagging_past_the_bound(refreshed: Deps) -> None:
    async with refreshed.pool.acquire() as conn:
        await conn.execute("UPDATE rollup_state SET rolled_until = now() - interval '2 hours'")
    response = await _get(refreshed, "/readyz")
    assert response.status_code == 503
    assert re.fullmatch(
        r"behind: lag 720\d s \(at most 1800 s\)", response.json()["checks"]["rollups"]
    )
    # The bound is the operator's: a larger one, or 0 (no check), makes it ready again.
    for bound in (3 * 3600, 0):
        settings = refreshed.settings.model_copy(update={"ready_max_rollup_lag": bound})
        response = await _get(dataclasses.replace(refreshed, settings=settings), "/readyz")
        assert response.status_code == 200, response.text


async def test_readyz_is_not_ready_while_draining(refreshed: Deps) -> None:
    refreshed.lifecycle.drain()
    response = await _get(refreshed, "/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["lifecycle"] == "draining"


async def test_readyz_is_not_ready_when_redis_is_unreachable(deps: Deps) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    try:
        response = await _get(dataclasses.replace(deps, redis=dead), "/readyz")
    finally:
        await dead.aclose()
    assert response.status_code == 503
    assert response.json()["status"] == "not_ready"
    assert response.json()["checks"]["redis"].startswith("unreachable")


async def test_readyz_is_not_ready_when_a_migration_is_pending(deps: Deps) -> None:
    async with deps.pool.acquire() as conn:
        await conn.execute("DELETE FROM wattwise_migrations WHERE version = 1")
    response = await _get(deps, "/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "1 pending"


async def test_readyz_without_redis_reports_in_memory_quotas(refreshed: Deps) -> None:
    response = await _get(dataclasses.replace(refreshed, redis=None), "/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["redis"] == "not configured (in-memory quotas)"
