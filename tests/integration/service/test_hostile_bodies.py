"""Request bodies sent to hurt: larger than the limit (declared or chunked), without a token,
nested ten thousand deep, or carrying U+0000 or a lone surrogate. Each is a JSON error
with a code, decided before the body is buffered past its limit, and never a traceback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from service import requests
from service.app import create_app
from service.deps import Deps
from service.routes import chat as chat_routes
from telemetry import ingest
from tests.hostile import alarming, make_target
from tests.integration.conftest import MakeUser

CHUNK = 64 * 1024
DEEP = 100_000

# Every route that reads a body, with the most it takes. Path ids are made up: the body is
# judged before anything is looked up.
_H = f"/v1/households/{uuid.uuid4()}"
_A = f"/v1/actions/{uuid.uuid4()}"
ROUTES = [
    pytest.param(f"{_H}/chat", chat_routes.MAX_BODY_BYTES, id="chat"),
    pytest.param("/v1/chat/completions", chat_routes.MAX_BODY_BYTES, id="completions"),
    pytest.param("/v1/telemetry", ingest.MAX_BODY_BYTES, id="telemetry"),
    pytest.param("/v1/households", requests.MAX_ADMIN_BODY_BYTES, id="households"),
    pytest.param(f"{_H}/devices", requests.MAX_ADMIN_BODY_BYTES, id="devices"),
    pytest.param(f"{_H}/members", requests.MAX_ADMIN_BODY_BYTES, id="members"),
    pytest.param(f"{_H}/support", requests.MAX_ADMIN_BODY_BYTES, id="support"),
    pytest.param("/v1/users", requests.MAX_ADMIN_BODY_BYTES, id="users"),
    pytest.param(f"{_A}/confirm", requests.MAX_ADMIN_BODY_BYTES, id="confirm"),
    pytest.param(f"{_A}/cancel", requests.MAX_ADMIN_BODY_BYTES, id="cancel"),
    pytest.param(f"{_A}/undo", requests.MAX_ADMIN_BODY_BYTES, id="undo"),
    pytest.param(f"/v1/commands/{uuid.uuid4()}/ack", requests.MAX_ADMIN_BODY_BYTES, id="ack"),
]


@dataclass
class Body:
    """A chunked body of `size` bytes that counts what the server pulled from it."""

    size: int
    sent: int = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        while self.sent < self.size:
            chunk = b"[" * min(CHUNK, self.size - self.sent)
            self.sent += len(chunk)
            yield chunk


@dataclass(frozen=True)
class Home:
    id: uuid.UUID
    device: uuid.UUID
    resident: dict[str, str]
    gateway: dict[str, str]


@pytest.fixture
async def home(pool: asyncpg.Pool, make_user: MakeUser) -> Home:
    resident, resident_headers = await make_user("resident")
    gateway, gateway_headers = await make_user("gateway")
    async with pool.acquire() as conn:
        made = await make_target(conn, resident=resident.id, gateway=gateway.id, headers={})
    return Home(made.household, made.device, resident_headers, gateway_headers)


@pytest.fixture
async def admin(make_user: MakeUser) -> dict[str, str]:
    return (await make_user("admin"))[1]


def _refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == code, response.json()


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if alarming(r)] == []


@pytest.mark.parametrize(("path", "limit"), ROUTES)
async def test_a_chunked_body_over_the_limit_is_refused_before_it_is_buffered(
    client: httpx.AsyncClient, admin: dict[str, str], path: str, limit: int
) -> None:
    body = Body(limit * 4)
    headers = admin | {"idempotency-key": "k1"}
    response = await client.post(path, content=body.chunks(), headers=headers)
    _refused(response, 413, "payload_too_large")
    assert body.sent <= limit + CHUNK


@pytest.mark.parametrize(("path", "limit"), ROUTES)
async def test_a_declared_content_length_over_the_limit_is_refused_unread(
    client: httpx.AsyncClient, admin: dict[str, str], path: str, limit: int
) -> None:
    body = Body(limit + 1)
    headers = admin | {"idempotency-key": "k1", "content-length": str(limit + 1)}
    response = await client.post(path, content=body.chunks(), headers=headers)
    _refused(response, 413, "payload_too_large")
    assert body.sent == 0


@pytest.mark.parametrize(("path", "limit"), ROUTES)
async def test_a_content_length_with_leading_zeros_is_read_by_its_value(
    client: httpx.AsyncClient, admin: dict[str, str], path: str, limit: int
) -> None:
    padded = "0" * (len(str(limit)) + 1) + "2"  # more digits than the limit has, value 2
    headers = admin | {"idempotency-key": "k1", "content-length": padded}
    response = await client.post(path, content=b"{}", headers=headers)
    assert response.status_code != 413, response.text


@pytest.mark.parametrize(("path", "limit"), ROUTES)
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token"])
async def test_a_body_without_a_valid_token_is_refused_before_a_byte_is_read(
    client: httpx.AsyncClient, path: str, limit: int, authorization: str | None
) -> None:
    body = Body(limit * 4)
    headers = {"authorization": authorization} if authorization else {}
    response = await client.post(path, content=body.chunks(), headers=headers)
    assert response.status_code == 401, response.text
    assert body.sent == 0


async def test_deeply_nested_json_is_invalid_json_not_a_500(
    client: httpx.AsyncClient, home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    deep = b"[" * DEEP
    chat = f"/v1/households/{home.id}/chat"
    for path, headers, content in [
        (chat, home.resident, deep),
        (chat, home.resident, b'{"messages": ' + deep),
        ("/v1/chat/completions", home.resident, b'{"model": "wattwise", "messages": ' + deep),
        ("/v1/telemetry", home.gateway, deep),
        ("/v1/telemetry", home.gateway, b'{"readings": ' + deep),
    ]:
        response = await client.post(path, content=content, headers=headers)
        _refused(response, 400, "invalid_json")
        assert "nested" in response.json()["error"]["message"]
    _no_traceback(caplog)


async def test_a_deeply_nested_ndjson_line_is_a_rejected_reading_not_a_500(
    client: httpx.AsyncClient, home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    good = f'{{"device_id": "{home.device}", "ts": "2020-01-01T00:00:00Z", "watts": 1}}'
    content = f"{good}\n{'[' * DEEP}\n".encode()
    headers = home.gateway | {"content-type": "application/x-ndjson"}
    response = await client.post("/v1/telemetry", content=content, headers=headers)
    assert response.status_code == 200, response.text
    [rejected] = [r for r in response.json()["rejected"] if r["index"] == 1]
    assert rejected["code"] == "invalid_json"
    assert "nested" in rejected["message"]
    _no_traceback(caplog)


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        pytest.param("how much \x00 today?", r"how much \u0000 today?", id="nul"),
        pytest.param("how much \ud800 today?", r"how much \ud800 today?", id="lone-surrogate"),
        pytest.param("\udfff", r"\udfff", id="lone-low-surrogate"),
    ],
)
async def test_nul_and_lone_surrogates_in_chat_text_are_invalid_text(
    client: httpx.AsyncClient,
    home: Home,
    caplog: pytest.LogCaptureFixture,
    text: str,
    escaped: str,
) -> None:
    ok = '{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}'
    bad = f'{{"role": "user", "content": "{escaped}"}}'
    parts = f'{{"role": "user", "parts": [{{"type": "text", "text": "{escaped}"}}]}}'
    chat = f"/v1/households/{home.id}/chat"
    cases = [
        (chat, f'{{"messages": [{bad}]}}', "messages.0.content"),
        (chat, f'{{"messages": [{bad}, {ok}]}}', "messages.0.content"),  # in the history
        (chat, f'{{"messages": [{parts}]}}', "messages.0.parts.0.text"),
        (
            "/v1/chat/completions",
            f'{{"model": "wattwise", "messages": [{ok}, {bad}]}}',
            "messages.2.content",
        ),
    ]
    for path, content, field in cases:
        response = await client.post(path, content=content.encode(), headers=home.resident)
        _refused(response, 422, "invalid_text")
        error = response.json()["error"]
        assert error["fields"][0]["field"] == field, error
        assert field in error["message"]
    _no_traceback(caplog)


async def test_a_lone_surrogate_in_a_telemetry_batch_is_invalid_text(
    client: httpx.AsyncClient, home: Home
) -> None:
    content = rb'{"readings": [{"device_id": "x", "ts": "\ud800", "watts": 1}]}'
    response = await client.post("/v1/telemetry", content=content, headers=home.gateway)
    _refused(response, 422, "invalid_text")
    assert response.json()["error"]["fields"][0]["field"] == "readings.0.ts"


async def test_a_body_that_is_not_utf8_is_invalid_json(
    client: httpx.AsyncClient, home: Home, admin: dict[str, str]
) -> None:
    chat = f"/v1/households/{home.id}/chat"
    content = b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}'
    _refused(await client.post(chat, content=content, headers=home.resident), 400, "invalid_json")
    households_body = b'{"name": "\xed\xa0\x80", "timezone": "UTC"}'
    response = await client.post("/v1/households", content=households_body, headers=admin)
    _refused(response, 400, "invalid_json")


async def test_a_fault_of_ours_is_a_json_500_with_its_code_and_no_internals(
    deps: Deps, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    _, admin = await make_user("admin")
    # Starlette re-raises a fault after its response, for the server's log; the client sees
    # the response.
    transport = httpx.ASGITransport(app=create_app(deps=deps), raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://wattwise.test", headers=admin
    ) as client:
        tariff = {"currency": "EUR", "import_price_per_kwh": 0.3, "export_price_per_kwh": 0.1}
        body = {"name": "Home", "timezone": "Europe/Berlin", "tariff": tariff}
        created = await client.post("/v1/households", json=body)
        assert created.status_code == 201, created.text
        # The schema no longer what the code expects: a fault of ours, not of the request.
        await pool.execute("ALTER TABLE devices RENAME TO devices_gone")
        response = await client.get(f"/v1/households/{created.json()['id']}/devices")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {"code": "internal_error", "message": "Something went wrong on our side."}
    }
