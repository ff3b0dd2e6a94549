"""Liveness and readiness: /readyz reports each dependency and answers 503 when one is
down or the schema is behind."""

from __future__ import annotations

import dataclasses

import httpx
import redis.asyncio as aioredis

from agent.deps import Deps
from agent.http import create_app


async def _get(deps: Deps, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(deps=deps))
    async with httpx.AsyncClient(transport=transport, base_url="http://wattwise.test") as c:
        return await c.get(path)


async def test_healthz_answers_without_dependencies(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ready_with_database_migrations_and_redis(deps: Deps) -> None:
    response = await _get(deps, "/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "current", "redis": "ok"},
    }


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


async def test_readyz_without_redis_reports_in_memory_quotas(deps: Deps) -> None:
    response = await _get(dataclasses.replace(deps, redis=None), "/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["redis"] == "not configured (in-memory quotas)"
