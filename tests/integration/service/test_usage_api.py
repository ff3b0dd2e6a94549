"""GET /v1/usage, and how quota refusals reach a client: status, code, the limit, when it
resets or when to retry."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import httpx
import redis.asyncio as aioredis
from starlette.requests import Request

from quota.core import QuotaExceeded, RateLimited
from service.app import _quota_refused, create_app
from service.deps import Deps, quota_service
from tests.integration.conftest import MakeUser, kill_redis_connections


async def test_usage_shows_what_was_used_and_what_remains(
    client: httpx.AsyncClient, deps: Deps, make_user: MakeUser
) -> None:
    user, headers = await make_user("resident")
    model = next(iter(deps.quota.prices.models))
    r = await deps.quota.reserve(user_id=user.id, household_id=None, model=model, prompt_tokens=120)
    await deps.quota.settle(r, prompt_tokens=120, completion_tokens=30)
    held = await deps.quota.reserve(
        user_id=user.id, household_id=None, model=model, prompt_tokens=10, max_tokens=40
    )
    response = await client.get("/v1/usage", headers=headers)
    assert response.status_code == 200
    body = response.json()
    daily = body["daily_tokens"]
    assert (daily["used"], daily["reserved"]) == (150, 50)
    assert daily["limit"] == deps.settings.user_daily_tokens
    assert daily["remaining"] == deps.settings.user_daily_tokens - 200
    assert body["monthly_tokens"]["used"] == 150
    assert body["periods"]["tz"] == "UTC"
    assert "monthly_spend" not in body  # the deployment's spend is for administrators
    await deps.quota.release(held)


async def test_an_administrator_also_sees_the_monthly_spend(
    client: httpx.AsyncClient, deps: Deps, make_user: MakeUser
) -> None:
    _, headers = await make_user("admin")
    body = (await client.get("/v1/usage", headers=headers)).json()
    spend = body["monthly_spend"]
    assert spend["currency"] == deps.settings.spend_currency
    assert spend["cap_micro"] == int(deps.settings.monthly_spend_cap * 1_000_000)
    assert (
        spend["remaining_micro"]
        == spend["cap_micro"] - spend["used_micro"] - spend["reserved_micro"]
    )


async def test_usage_without_redis_is_503_quota_unavailable(
    deps: Deps, make_user: MakeUser
) -> None:
    _, headers = await make_user("resident")
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    try:
        broken = dataclasses.replace(deps, quota=quota_service(deps.settings, deps.pool, dead))
        transport = httpx.ASGITransport(app=create_app(deps=broken))
        async with httpx.AsyncClient(transport=transport, base_url="http://wattwise.test") as c:
            response = await c.get("/v1/usage", headers=headers)
    finally:
        await dead.aclose()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "quota_unavailable"


async def test_usage_survives_a_dropped_redis_connection(
    client: httpx.AsyncClient, redis_client: aioredis.Redis, make_user: MakeUser
) -> None:
    _, headers = await make_user("resident")
    assert (await client.get("/v1/usage", headers=headers)).status_code == 200
    # Every other connection of this process is idle now: the pooled ones all drop.
    assert await kill_redis_connections(kind="normal") >= 1
    response = await client.get("/v1/usage", headers=headers)  # a read: tried again
    assert response.status_code == 200, response.text


def _request() -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "headers": []})


async def test_refusals_carry_the_limit_its_reset_and_retry_after() -> None:
    resets = datetime(2026, 12, 1, tzinfo=UTC)
    response = await _quota_refused(_request(), QuotaExceeded("spend_cap", resets))
    assert response.status_code == 402
    error = json.loads(bytes(response.body))["error"]
    assert error["code"] == "quota_exceeded"
    assert (error["limit"], error["resets_at"]) == ("spend_cap", resets.isoformat())
    assert "spending cap" in error["message"]
    response = await _quota_refused(_request(), RateLimited(2_400))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert json.loads(bytes(response.body))["error"]["retry_after"] == 3
