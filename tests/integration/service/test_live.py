"""GET /v1/households/{id}/live/stream: the state now, then every stored batch, fanned out
through Redis to every process; only for callers who may see the household; a client that
stops reading is dropped without holding up ingestion; streams end with a reason."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from starlette.types import Message

from service.app import create_app
from service.deps import Deps, build_deps
from service.settings import Settings
from telemetry import access, households
from telemetry.tariff import Tariff
from tests.fakes.server import serving
from tests.integration.conftest import MakeUser, kill_redis_connections
from tests.polling import eventually
from tests.sse import Event, events, parse

TARIFF = Tariff(currency="EUR", import_price_per_kwh=0.3, export_price_per_kwh=0.1)


@dataclass(frozen=True)
class Home:
    id: UUID
    heater: UUID
    grid: UUID
    resident: dict[str, str]
    gateway: dict[str, str]
    resident_id: UUID

    @property
    def stream(self) -> str:
        return f"/v1/households/{self.id}/live/stream"


@pytest.fixture
async def home(pool: asyncpg.Pool, make_user: MakeUser) -> Home:
    gateway, gateway_headers = await make_user("gateway")
    resident, resident_headers = await make_user("resident")
    async with pool.acquire() as conn:
        mine = await households.create_household(conn, name="Mine", timezone="UTC", tariff=TARIFF)
        heater = await households.create_device(
            conn, household_id=mine.id, name="Heater", kind="consumer",
            controllable=True, max_watts=3000,
        )  # fmt: skip
        grid = await households.create_device(
            conn, household_id=mine.id, name="Grid", kind="grid",
            controllable=False, max_watts=20000,
        )  # fmt: skip
        await access.add_member(conn, household_id=mine.id, user_id=gateway.id, role="gateway")
        await access.add_member(conn, household_id=mine.id, user_id=resident.id, role="owner")
    return Home(mine.id, heater.id, grid.id, resident_headers, gateway_headers, resident.id)


def _reading(device: UUID, watts: float, seconds_ago: float = 0) -> dict[str, Any]:
    ts = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return {"device_id": str(device), "ts": ts.isoformat(), "watts": watts}


async def _post(client: httpx.AsyncClient, home: Home, *readings: dict[str, Any]) -> None:
    response = await client.post(
        "/v1/telemetry", headers=home.gateway, json={"readings": list(readings)}
    )
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == []


def _asgi_client(deps: Deps) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(deps=deps))
    return httpx.AsyncClient(transport=transport, base_url="http://wattwise.test")


@dataclass
class Stream:
    """An open live stream over a real connection; next() is its next event."""

    it: AsyncIterator[Event]

    async def next(self, seconds: float = 5) -> Event:
        async with asyncio.timeout(seconds):
            return await anext(self.it)

    async def until(self, check: Any, seconds: float = 5) -> dict[str, Any]:
        """The first `live` state that passes `check`."""
        async with asyncio.timeout(seconds):
            while True:
                event = await anext(self.it)
                assert event.event == "live", event
                state: dict[str, Any] = event.json()
                if check(state):
                    return state


async def _open(url: str, path: str, headers: dict[str, str]) -> AsyncIterator[Stream]:
    async with (
        httpx.AsyncClient(base_url=url, timeout=10) as client,
        client.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Stream(events(response))


def _device(state: dict[str, Any], device: UUID) -> dict[str, Any]:
    return next(d for d in state["devices"] if d["id"] == str(device))


async def test_a_stream_starts_with_the_state_and_follows_each_stored_batch(
    deps: Deps, home: Home
) -> None:
    async with (
        _asgi_client(deps) as api,
        serving(create_app(deps=deps)) as url,
    ):
        async for stream in _open(url, home.stream, home.resident):
            first = (await stream.next()).json()
            assert first["house_load_watts"] == 0.0
            assert {d["name"]: d["watts"] for d in first["devices"]} == {
                "Grid": None,
                "Heater": None,
            }
            await _post(api, home, _reading(home.heater, 1500), _reading(home.grid, 1200))
            state = await stream.until(lambda s: s["house_load_watts"] == 1500.0)
            assert state["grid_import_watts"] == 1200.0
            assert _device(state, home.heater)["stale"] is False
            await _post(api, home, _reading(home.grid, -300))
            state = await stream.until(lambda s: s["grid_export_watts"] == 300.0)
            assert state["grid_import_watts"] == 0.0
            assert state["house_load_watts"] == 1500.0  # the heater's last reading holds
            # The stream's state is the one GET /live reads from the database.
            live = (await api.get(f"/v1/households/{home.id}/live", headers=home.resident)).json()
            for key in ("house_load_watts", "grid_import_watts", "grid_export_watts"):
                assert live[key] == state[key]
            assert [(d["id"], d["watts"]) for d in live["devices"]] == [
                (d["id"], d["watts"]) for d in state["devices"]
            ]
            break


async def test_batches_faster_than_the_interval_are_folded_into_one_event(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis, home: Home
) -> None:
    deps = build_deps(settings.model_copy(update={"live_min_interval": 1.0}), pool, redis_client)
    try:
        async with _asgi_client(deps) as api, serving(create_app(deps=deps)) as url:
            async for stream in _open(url, home.stream, home.resident):
                await stream.next()
                for n in range(10):
                    await _post(api, home, _reading(home.heater, 500 + n, 10 - n))
                # Ten batches, but one event a second: one or (on a slow machine) two more.
                events, state = 1, (await stream.next()).json()
                while state["house_load_watts"] != 509.0:
                    events, state = events + 1, (await stream.next()).json()
                assert events <= 2
                with pytest.raises(TimeoutError):
                    await stream.next(seconds=1.2)
                assert _device(state, home.heater)["watts"] == 509.0
                break
    finally:
        await deps.live.close()


async def test_only_callers_who_may_see_the_household_get_a_stream(
    deps: Deps, home: Home, make_user: MakeUser
) -> None:
    _, stranger = await make_user("resident")
    async with _asgi_client(deps) as api:
        assert (await api.get(home.stream)).status_code == 401
        refused = await api.get(home.stream, headers=stranger)
        made_up = await api.get(f"/v1/households/{uuid4()}/live/stream", headers=stranger)
        assert refused.status_code == made_up.status_code == 404
        assert refused.json() == made_up.json()
        gateway = await api.get(home.stream, headers=home.gateway)
        assert gateway.status_code == 403


def _scope(path: str, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("wattwise.test", 80),
        "state": {},
    }


async def test_a_client_that_stops_reading_is_dropped_and_ingestion_goes_on(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis, home: Home
) -> None:
    configured = settings.model_copy(update={"live_send_timeout": 1.0, "live_min_interval": 0})
    deps = build_deps(configured, pool, redis_client)
    app = create_app(deps=deps)
    stalled = asyncio.Event()
    slow_body: list[bytes] = []

    async def receive() -> Message:
        await asyncio.Event().wait()  # the client never hangs up
        raise AssertionError("unreachable")

    async def slow_send(message: Message) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            slow_body.append(message["body"])
            if len(slow_body) > 1:  # the first event arrives; then the client stops reading
                stalled.set()
                await asyncio.Event().wait()

    slow = asyncio.create_task(app(_scope(home.stream, home.resident), receive, slow_send))
    try:
        async with _asgi_client(deps) as api, serving(app) as url:
            async for fast in _open(url, home.stream, home.resident):
                await fast.next()
                for n in range(40):  # 40 batches over 2 s: the slow one stalls, then goes
                    async with asyncio.timeout(10):  # blocked ingestion would hang here
                        await _post(api, home, _reading(home.heater, 100 + n, 60 - n))
                    await fast.until(lambda s, w=100 + n: s["house_load_watts"] == w)
                    await asyncio.sleep(0.05)
                async with asyncio.timeout(5):
                    await slow  # its response ended: the client was dropped
                assert deps.live.subscribers == 1  # the fast one stays
                break
        assert stalled.is_set()
        dropped = deps.metrics.registry.get_sample_value(
            "wattwise_live_dropped_total", {"reason": "slow"}
        )
        assert dropped == 1.0
        assert len(parse(b"".join(slow_body).decode())) == 2
    finally:
        slow.cancel()
        await deps.live.close()


async def test_updates_reach_the_streams_of_another_process_through_redis(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis, home: Home
) -> None:
    prefix = f"wwtest:{uuid4().hex[:10]}"
    shared = settings.model_copy(update={"quota_prefix": prefix})
    ingesting = build_deps(shared, pool, redis_client)
    streaming = build_deps(shared, pool, redis_client)
    elsewhere = build_deps(
        settings.model_copy(update={"quota_prefix": f"{prefix}x"}), pool, redis_client
    )
    try:
        async with (
            _asgi_client(ingesting) as api,
            serving(create_app(deps=streaming)) as url,
            serving(create_app(deps=elsewhere)) as other_url,
        ):
            async for stream in _open(url, home.stream, home.resident):
                async for other in _open(other_url, home.stream, home.resident):
                    await stream.next()
                    await other.next()
                    async with asyncio.timeout(5):
                        await streaming.live.subscribed.wait()
                        await elsewhere.live.subscribed.wait()
                    await _post(api, home, _reading(home.heater, 2200))
                    state = await stream.until(lambda s: s["house_load_watts"] == 2200.0)
                    assert _device(state, home.heater)["watts"] == 2200.0
                    # A deployment with another prefix hears nothing of it.
                    with pytest.raises(TimeoutError):
                        await other.next(seconds=0.5)
                    break
                break
    finally:
        for built in (ingesting, streaming, elsewhere):
            await built.live.close()


async def test_a_lost_subscription_is_restored_and_the_state_read_again(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis, home: Home
) -> None:
    shared = settings.model_copy(update={"quota_prefix": f"wwtest:{uuid4().hex[:10]}"})
    ingesting = build_deps(shared, pool, redis_client)
    streaming = build_deps(shared, pool, redis_client)
    try:
        async with _asgi_client(ingesting) as api, serving(create_app(deps=streaming)) as url:
            async for stream in _open(url, home.stream, home.resident):
                await stream.next()
                async with asyncio.timeout(5):
                    await streaming.live.subscribed.wait()
                assert await kill_redis_connections(kind="pubsub") >= 1
                # Stored while the subscription is down: only the re-read can show it.
                await _post(api, home, _reading(home.heater, 900))
                state = await stream.until(lambda s: s["house_load_watts"] == 900.0)
                assert _device(state, home.heater)["watts"] == 900.0
                async with asyncio.timeout(5):
                    await streaming.live.subscribed.wait()
                await _post(api, home, _reading(home.heater, 950))
                await stream.until(lambda s: s["house_load_watts"] == 950.0)
                break
    finally:
        await ingesting.live.close()
        await streaming.live.close()


async def test_a_stream_ends_when_its_token_expires_or_access_is_revoked(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis, home: Home
) -> None:
    deps = build_deps(settings.model_copy(update={"live_resync_seconds": 0.2}), pool, redis_client)
    short = deps.tokens.issue(home.resident_id, ttl=timedelta(seconds=2))
    try:
        async with serving(create_app(deps=deps)) as url:
            async for stream in _open(url, home.stream, {"Authorization": f"Bearer {short}"}):
                async with asyncio.timeout(6):
                    while (event := await stream.next()).event == "live":
                        pass
                assert (event.event, event.json()["code"]) == ("end", "token_expired")
                break
            async for stream in _open(url, home.stream, home.resident):
                await stream.next()
                async with pool.acquire() as conn:
                    await conn.execute(
                        "DELETE FROM household_members WHERE user_id = $1", home.resident_id
                    )
                async with asyncio.timeout(3):
                    while (event := await stream.next()).event == "live":
                        pass
                assert (event.event, event.json()["code"]) == ("end", "access_revoked")
                break
    finally:
        await deps.live.close()


async def test_a_process_serves_at_most_its_share_of_streams(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis, home: Home
) -> None:
    deps = build_deps(settings.model_copy(update={"live_max_streams": 1}), pool, redis_client)
    try:
        async with serving(create_app(deps=deps)) as url, _asgi_client(deps) as api:
            async for stream in _open(url, home.stream, home.resident):
                await stream.next()
                refused = await api.get(home.stream, headers=home.resident)
                assert refused.status_code == 503
                assert refused.json()["error"]["code"] == "too_many_streams"
                break
    finally:
        await deps.live.close()


async def test_draining_ends_live_streams_at_once(deps: Deps, home: Home) -> None:
    async with serving(create_app(deps=deps)) as url:
        async for stream in _open(url, home.stream, home.resident):
            await stream.next()
            deps.lifecycle.drain()
            event = await stream.next(seconds=2)
            assert (event.event, event.json()["code"]) == ("end", "shutting_down")
            with pytest.raises(StopAsyncIteration):
                await stream.next()
            break


async def test_a_stream_is_counted_while_it_is_open(deps: Deps, home: Home) -> None:
    def open_streams() -> float | None:
        return deps.metrics.registry.get_sample_value(
            "wattwise_sse_streams_open", {"endpoint": "live"}
        )

    async with serving(create_app(deps=deps)) as url:
        async for stream in _open(url, home.stream, home.resident):
            await stream.next()
            assert open_streams() == 1.0
            assert deps.live.subscribers == 1
            break
        await eventually(lambda: deps.live.subscribers == 0)
        assert open_streams() == 0.0


# Revocation: the stream's end must come from the revocation itself, never from a resync.
NO_RESYNC = {"live_resync_seconds": 3600.0}


@contextlib.asynccontextmanager
async def _two_processes(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> AsyncIterator[tuple[Deps, Deps]]:
    """Two processes of one deployment: their own hubs and token caches, one Redis; their
    hubs closed afterwards."""
    shared = settings.model_copy(update={"quota_prefix": f"wwtest:{uuid4().hex[:10]}", **NO_RESYNC})
    a, b = build_deps(shared, pool, redis_client), build_deps(shared, pool, redis_client)
    try:
        yield a, b
    finally:
        for built in (a, b):
            await built.live.close()


async def _listening(stream: Stream, process: Deps) -> None:
    """The stream's first event taken and its process subscribed to the fan-out, so what
    the other process announces reaches it."""
    await stream.next()
    async with asyncio.timeout(5):
        await process.live.subscribed.wait()


async def _ending(stream: Stream, seconds: float = 5) -> str:
    """The code of the `end` event the stream finishes with (live events skipped)."""
    async with asyncio.timeout(seconds):
        while (event := await stream.next(seconds)).event == "live":
            pass
    assert event.event == "end", event
    code: str = event.json()["code"]
    return code


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("access_of", ["members", "support"])
async def test_a_removed_member_or_support_assignment_ends_the_stream_at_once_in_every_process(
    access_of: str,
    settings: Settings,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    home: Home,
    make_user: MakeUser,
) -> None:
    _, admin = await make_user("admin")
    if access_of == "members":
        user_id, headers = home.resident_id, home.resident
    else:
        support, headers = await make_user("support")
        user_id = support.id
        async with pool.acquire() as conn:
            await access.assign_support(
                conn, household_id=home.id, user_id=support.id, expires_at=None
            )
    async with (
        _two_processes(settings, pool, redis_client) as (a, b),
        _asgi_client(a) as api,
        serving(create_app(deps=b)) as url,
    ):
        async for stream in _open(url, home.stream, headers):
            await _listening(stream, b)
            removed = await api.delete(
                f"/v1/households/{home.id}/{access_of}/{user_id}", headers=admin
            )
            assert removed.status_code == 204, removed.text
            assert await _ending(stream) == "access_revoked"
            break
        refused = await api.get(home.stream, headers=headers)
        assert refused.status_code == 404


async def test_a_revoked_token_ends_its_stream_and_is_refused_by_every_process(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis, home: Home
) -> None:
    async with _two_processes(settings, pool, redis_client) as (a, b):
        token = _bearer(b.tokens.issue(home.resident_id, ttl=timedelta(minutes=5)))
        async with (
            _asgi_client(a) as api_a,
            _asgi_client(b) as api_b,
            serving(create_app(deps=b)) as url,
        ):
            async for stream in _open(url, home.stream, token):
                await _listening(stream, b)
                assert (await api_b.get("/v1/me", headers=token)).status_code == 200  # cached
                revoked = await api_a.post("/v1/tokens/revoke", headers=token)
                assert revoked.status_code == 200, revoked.text
                assert await _ending(stream) == "token_revoked"
                break
            for api in (api_a, api_b):
                refused = await api.get("/v1/me", headers=token)
                assert refused.status_code == 401
                assert refused.json()["error"]["code"] == "token_revoked"
            # Only that token: the holder's other tokens still work.
            assert (await api_a.get("/v1/me", headers=home.resident)).status_code == 200


async def test_revoking_a_users_tokens_ends_their_streams_and_refuses_every_older_token(
    settings: Settings,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    home: Home,
    make_user: MakeUser,
) -> None:
    _, admin = await make_user("admin")
    async with (
        _two_processes(settings, pool, redis_client) as (a, b),
        _asgi_client(a) as api_a,
        _asgi_client(b) as api_b,
        serving(create_app(deps=b)) as url,
    ):
        async for stream in _open(url, home.stream, home.resident):
            await _listening(stream, b)
            revoked = await api_a.post(f"/v1/users/{home.resident_id}/revoke-tokens", headers=admin)
            assert revoked.status_code == 200, revoked.text
            assert await _ending(stream) == "token_revoked"
            break
        for api in (api_a, api_b):
            refused = await api.get("/v1/me", headers=home.resident)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "token_revoked"
        fresh = _bearer(a.tokens.issue(home.resident_id, ttl=timedelta(minutes=5)))
        assert (await api_b.get("/v1/me", headers=fresh)).status_code == 200


async def test_a_stream_ends_at_its_tokens_expiry_not_at_the_next_resync(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis, home: Home
) -> None:
    deps = build_deps(settings.model_copy(update=NO_RESYNC), pool, redis_client)
    short = _bearer(deps.tokens.issue(home.resident_id, ttl=timedelta(seconds=2)))
    try:
        async with serving(create_app(deps=deps)) as url:
            async for stream in _open(url, home.stream, short):
                await stream.next()
                assert await _ending(stream, seconds=10) == "token_expired"
                break
    finally:
        await deps.live.close()
