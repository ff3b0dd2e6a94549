"""What an operator sees: one JSON log line per request and per turn, with the request id,
user and household, never a token or (unless debug is on) a message; and /metrics, in
the Prometheus format, counting requests by route template, turns, tokens and cost,
quota refusals, ingested readings, with the rollup lag and the pool sampled at scrape."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from service import logs
from service.app import create_app
from service.deps import Deps, build_deps
from service.settings import Settings
from telemetry import access
from tests.fakes.llm import FAKE_PRICES, FakeLLM, fake_llm, says
from tests.integration.conftest import MakeUser
from tests.integration.homes import seeded_home

SECRET_WORDS = "my-pet-is-called-Quibble"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The process's log output as JSON lines, for one test."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    logs.configure(level="INFO", fmt="json", stream=out)
    try:
        yield out
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _client(deps: Deps) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(deps=deps))
    return httpx.AsyncClient(transport=transport, base_url="http://wattwise.test", timeout=30)


@pytest.fixture
async def home(pool: asyncpg.Pool, make_user: MakeUser) -> tuple[uuid.UUID, dict[str, str]]:
    user, headers = await make_user("resident")
    return await seeded_home(pool, user.id, days=0.3, seed=9), headers


def _ask(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": f"how much energy did I use today? {text}"}]}


async def test_a_request_and_its_turn_are_logged_as_json_without_secrets(
    deps: Deps, home: tuple[uuid.UUID, dict[str, str]], captured: io.StringIO
) -> None:
    household, headers = home
    async with _client(deps) as client:
        response = await client.post(
            f"/v1/households/{household}/chat",
            headers={**headers, "X-Request-ID": "req-obs-1"},
            json=_ask(SECRET_WORDS),
        )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-obs-1"
    lines = _lines(captured)
    [request] = [line for line in lines if line.get("event") == "request"]
    [turn] = [line for line in lines if line.get("event") == "turn"]
    user_id = str(deps.tokens.verify(headers["Authorization"].removeprefix("Bearer ")))
    assert request["route"] == "/v1/households/{household_id}/chat"
    assert (request["method"], request["status"], request["level"]) == ("POST", 200, "INFO")
    for line in (request, turn):
        assert line["request_id"] == "req-obs-1"
        assert line["user_id"] == user_id
        assert line["household_id"] == str(household)
        assert "ts" in line
    assert (turn["branch"], turn["mode"], turn["outcome"]) == ("energy", "narrator", "ok")
    assert turn["duration_ms"] >= turn["first_text_ms"] > 0
    text = captured.getvalue()
    assert headers["Authorization"].removeprefix("Bearer ") not in text
    assert SECRET_WORDS not in text


async def test_message_bodies_are_logged_only_with_debug_on(
    deps: Deps, home: tuple[uuid.UUID, dict[str, str]], captured: io.StringIO
) -> None:
    household, headers = home
    logging.getLogger().setLevel(logging.DEBUG)
    async with _client(deps) as client:
        await client.post(f"/v1/households/{household}/chat", headers=headers, json=_ask("x1"))
    [turn] = [line for line in _lines(captured) if line.get("event") == "turn"]
    assert turn["text"].endswith("x1")
    assert headers["Authorization"].removeprefix("Bearer ") not in captured.getvalue()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with fake_llm() as server:
        yield server


@pytest.fixture
async def metered(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis, fake: FakeLLM
) -> AsyncIterator[Deps]:
    """Deps with a model, and a rate limit of one turn at a time."""
    configured = settings.model_copy(
        update={
            "openai_base_url": fake.base_url,
            "model": "fake-model",
            "model_prices": FAKE_PRICES,
            "quota_prefix": f"wwtest:{uuid.uuid4().hex[:10]}",
            "rate_burst": 1,
            "rate_per_minute": 1,
        }
    )
    deps = build_deps(configured, pool, redis_client)
    yield deps
    assert deps.model is not None
    await deps.model.client.close()
    await deps.live.close()


async def test_metrics_count_requests_turns_tokens_refusals_and_readings(
    metered: Deps, fake: FakeLLM, home: tuple[uuid.UUID, dict[str, str]], make_user: MakeUser
) -> None:
    household, headers = home
    gateway, gateway_headers = await make_user("gateway")
    async with metered.pool.acquire() as conn:
        await access.add_member(conn, household_id=household, user_id=gateway.id, role="gateway")
        fridge = await conn.fetchval(
            "SELECT id FROM devices WHERE household_id = $1 AND name = 'Fridge'", household
        )
    fake.replies.append(says("Your use today looks steady. ", prompt=120, completion=30))
    chat = f"/v1/households/{household}/chat"
    async with _client(metered) as client:
        assert (await client.post(chat, headers=headers, json=_ask(""))).status_code == 200
        assert (await client.post(chat, headers=headers, json=_ask(""))).status_code == 429
        assert (await client.get(f"/v1/households/{uuid.uuid4()}", headers=headers)).is_error
        assert (await client.get("/wp-login.php")).status_code == 404
        now = datetime.now(UTC)
        readings = [
            {"device_id": str(fridge), "ts": now.isoformat(), "watts": 80.0},
            {"device_id": str(fridge), "ts": (now - timedelta(seconds=5)).isoformat(),
             "watts": "lots"},
            {"device_id": str(uuid.uuid4()), "ts": now.isoformat(), "watts": 1.0},
        ]  # fmt: skip
        ingest = await client.post(
            "/v1/telemetry", headers=gateway_headers, json={"readings": readings}
        )
        assert ingest.status_code == 200, ingest.text
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert str(household) not in response.text  # routes are templates, never paths
    s = _samples(response.text)
    assert _value(s, "wattwise_http_requests_total", method="POST", status="200",
                  route="/v1/households/{household_id}/chat") == 1.0  # fmt: skip
    assert _value(s, "wattwise_http_requests_total", method="POST", status="429",
                  route="/v1/households/{household_id}/chat") == 1.0  # fmt: skip
    assert _value(s, "wattwise_http_requests_total", method="GET", status="404",
                  route="unmatched") == 1.0  # fmt: skip
    assert _value(s, "wattwise_quota_refusals_total", reason="rate_limited") == 1.0
    assert _value(s, "wattwise_turns_total", branch="energy", mode="model", outcome="ok") == 1.0
    assert _value(s, "wattwise_turn_first_text_seconds_count", branch="energy", mode="model") == 1
    assert _value(s, "wattwise_llm_tokens_total", model="fake-model", type="prompt") == 120
    assert _value(s, "wattwise_llm_tokens_total", model="fake-model", type="completion") == 30
    cost = _value(s, "wattwise_llm_cost_total", model="fake-model", currency="USD")
    assert cost == pytest.approx((120 * 1 + 30 * 2) / 1e6)
    assert _value(s, "wattwise_ingest_readings_total", outcome="accepted", code="") == 1
    assert _value(s, "wattwise_ingest_readings_total", outcome="rejected",
                  code="invalid_watts") == 1  # fmt: skip
    assert _value(s, "wattwise_ingest_readings_total", outcome="rejected",
                  code="unknown_device") == 1  # fmt: skip
    lag = _value(s, "wattwise_rollup_lag_seconds")
    assert lag is not None
    assert 0 <= lag < 3600  # the home was rolled up to five minutes ago
    assert _value(s, "wattwise_db_pool_connections", state="max") == 4
    assert _value(s, "process_resident_memory_bytes") is not None


async def test_metrics_can_require_a_token(deps: Deps) -> None:
    settings = deps.settings.model_copy(update={"metrics_token": SecretStr("scrape-" + "x" * 20)})
    guarded = build_deps(settings, deps.pool, deps.redis)
    async with _client(guarded) as client:
        refused = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        allowed = await client.get(
            "/metrics", headers={"Authorization": "Bearer scrape-" + "x" * 20}
        )
    assert (refused.status_code, wrong.status_code, allowed.status_code) == (401, 401, 200)
    assert refused.json()["error"]["code"] == "invalid_token"
    assert "wattwise_http_requests_total" in allowed.text
