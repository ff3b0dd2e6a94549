"""Consent-gated commands: a checked proposal, one command per confirmation however often or
concurrently it is confirmed, ids that reveal nothing, idempotency keys, the gateway's
outbox and acknowledgements, and undo as a new proposal."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from agent import actions
from agent.errors import Conflict, Forbidden, NotFound
from telemetry import access, households
from telemetry.db import connect
from telemetry.tariff import Tariff
from tests.integration.conftest import Database, MakeUser

TARIFF = Tariff(currency="EUR", import_price_per_kwh=0.3, export_price_per_kwh=0.08)
HEATER_OFF = {"op": "SET_POWER", "device_name": "Heater", "value": "OFF"}


@dataclasses.dataclass
class Person:
    user: access.User
    headers: dict[str, str]

    def key(self, key: str) -> dict[str, str]:
        return self.headers | {"Idempotency-Key": key}


@dataclasses.dataclass
class Home:
    id: UUID
    devices: dict[str, households.Device]
    resident: Person
    member: Person  # another resident of the same home
    gateway: Person
    support: Person
    admin: Person
    stranger_gateway: Person  # the gateway of another household
    stranger_device: households.Device


async def _household(
    conn: Any, name: str, devices: list[tuple[str, str, bool]]
) -> tuple[UUID, dict[str, households.Device]]:
    household = await households.create_household(conn, name=name, timezone="UTC", tariff=TARIFF)
    made = {
        device: await households.create_device(
            conn,
            household_id=household.id,
            name=device,
            kind=kind,  # type: ignore[arg-type]
            controllable=controllable,
            max_watts=3000,
        )
        for device, kind, controllable in devices
    }
    return household.id, made


@pytest.fixture
async def home(pool: asyncpg.Pool, make_user: MakeUser) -> Home:
    resident, member, gateway, support, admin, stranger = [
        Person(*await make_user(role))
        for role in ("resident", "resident", "gateway", "support", "admin", "gateway")
    ]
    async with pool.acquire() as conn:
        home_id, devices = await _household(
            conn,
            "Home",
            [
                ("Heater", "consumer", True),
                ("Fridge", "consumer", False),
                ("EV charger", "ev_charger", True),
                ("Battery", "battery", True),
                ("Solar", "solar", True),
            ],
        )
        other_id, other_devices = await _household(conn, "Other", [("Sauna", "consumer", True)])
        await access.add_member(conn, household_id=home_id, user_id=resident.user.id, role="owner")
        await access.add_member(conn, household_id=home_id, user_id=member.user.id, role="member")
        await access.add_member(conn, household_id=home_id, user_id=gateway.user.id, role="gateway")
        await access.add_member(
            conn, household_id=other_id, user_id=stranger.user.id, role="gateway"
        )
        await access.assign_support(
            conn, household_id=home_id, user_id=support.user.id, expires_at=None
        )
    return Home(
        id=home_id,
        devices=devices,
        resident=resident,
        member=member,
        gateway=gateway,
        support=support,
        admin=admin,
        stranger_gateway=stranger,
        stranger_device=other_devices["Sauna"],
    )


async def _propose(
    pool: asyncpg.Pool, home: Home, device: str = "Heater", value: str = "OFF", **kw: Any
) -> actions.Action:
    async with pool.acquire() as conn:
        return await actions.propose(
            conn,
            household_id=home.id,
            user=kw.pop("user", home.resident.user),
            device=home.devices[device],
            op=kw.pop("op", "SET_POWER"),
            value=value,
            **kw,
        )


async def _count(pool: asyncpg.Pool, sql: str, *args: Any) -> int:
    async with pool.acquire() as conn:
        n: int = await conn.fetchval(sql, *args)
        return n


async def _commands(pool: asyncpg.Pool) -> int:
    return await _count(pool, "SELECT count(*) FROM commands")


async def _status(pool: asyncpg.Pool, action_id: str) -> str:
    async with pool.acquire() as conn:
        status: str = await conn.fetchval("SELECT status FROM actions WHERE id = $1", action_id)
        return status


def _confirm(client: httpx.AsyncClient, action_id: str, headers: dict[str, str]) -> Any:
    return client.post(f"/v1/actions/{action_id}/confirm", headers=headers)


# -- proposals -------------------------------------------------------------------------


async def test_a_proposal_stores_the_exact_command_waiting_for_consent(
    pool: asyncpg.Pool, home: Home
) -> None:
    action = await _propose(pool, home, value=" off ")
    assert action.value == "OFF"
    assert list(action.command.items()) == list(HEATER_OFF.items())
    assert action.status == "proposed"
    assert action.expires_at - action.created_at == actions.DEFAULT_TTL
    assert len(action.id) >= 22  # 16 random bytes
    async with pool.acquire() as conn:
        stored = await conn.fetchval("SELECT command::text FROM actions WHERE id = $1", action.id)
        events = await conn.fetch(
            "SELECT status FROM action_events WHERE action_id = $1", action.id
        )
    assert json.loads(stored) == HEATER_OFF
    assert [e["status"] for e in events] == ["proposed"]
    assert await _commands(pool) == 0


async def test_a_proposal_is_checked_and_a_refused_one_is_not_stored(
    pool: asyncpg.Pool, home: Home
) -> None:
    home.devices["Sauna"] = home.stranger_device  # another household's device
    refusals = [
        ("Sauna", "SET_POWER", "OFF", "unknown_device"),
        ("Fridge", "SET_POWER", "OFF", "not_controllable"),
        ("Solar", "SET_POWER", "OFF", "unsupported_operation"),
        ("Heater", "SET_CHARGE_CURRENT", "16", "unsupported_operation"),
        ("Heater", "EXPLODE", "1", "unsupported_operation"),
        ("Heater", "SET_POWER", "DIM", "invalid_value"),
        ("EV charger", "SET_CHARGE_CURRENT", "64", "invalid_value"),
        ("Battery", "SET_BATTERY_RESERVE", "-5", "invalid_value"),
    ]
    for device, op, value, code in refusals:
        with pytest.raises(actions.ActionRefused) as refused:
            await _propose(pool, home, device, value, op=op)
        assert (refused.value.code, refused.value.status) == (code, 422), device
    assert await _count(pool, "SELECT count(*) FROM actions") == 0
    ok = await _propose(pool, home, "EV charger", "16", op="SET_CHARGE_CURRENT")
    assert ok.command == {"op": "SET_CHARGE_CURRENT", "device_name": "EV charger", "value": "16"}


async def test_only_residents_and_admins_propose_and_only_in_homes_they_see(
    pool: asyncpg.Pool, home: Home, make_user: MakeUser
) -> None:
    for person in (home.support, home.gateway):
        with pytest.raises(Forbidden):
            await _propose(pool, home, user=person.user)
    outsider, _ = await make_user("resident")
    with pytest.raises(NotFound):
        await _propose(pool, home, user=outsider)
    assert await _count(pool, "SELECT count(*) FROM actions") == 0


async def test_pending_lists_the_users_live_proposals_and_expires_lapsed_ones(
    pool: asyncpg.Pool, home: Home
) -> None:
    lapsed = await _propose(pool, home)
    live = await _propose(pool, home, "Battery", "ON")
    # Another device: one for the Heater would supersede `lapsed`.
    await _propose(pool, home, "EV charger", user=home.member.user)
    async with pool.acquire() as conn:
        await _backdate(conn, lapsed.id)
        found = await actions.pending(conn, household_id=home.id, user_id=home.resident.user.id)
    assert [a.id for a in found] == [live.id]
    assert await _status(pool, lapsed.id) == "expired"


# -- confirmation ----------------------------------------------------------------------


async def test_confirm_emits_the_exact_command_once(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    action = await _propose(pool, home)
    first = await _confirm(client, action.id, home.resident.key("k1"))
    assert first.status_code == 200, first.text
    body = first.json()
    assert list(body["command"].items()) == list(HEATER_OFF.items())
    assert body["replayed"] is False
    assert body["action"]["status"] == "sent"
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT id, command::text AS command FROM commands")
    assert row is not None
    assert row["command"] == '{"op" : "SET_POWER", "device_name" : "Heater", "value" : "OFF"}'
    assert str(row["id"]) == body["command_id"]

    again = await _confirm(client, action.id, home.resident.key("k2"))
    assert again.status_code == 200
    assert again.json()["replayed"] is True
    assert again.json()["command_id"] == body["command_id"]
    assert again.json()["command"] == HEATER_OFF
    assert await _commands(pool) == 1


async def test_twenty_concurrent_confirms_over_http_make_one_command(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    action = await _propose(pool, home)
    responses = await asyncio.gather(
        *(_confirm(client, action.id, home.resident.key(f"key-{i}")) for i in range(20))
    )
    assert [r.status_code for r in responses] == [200] * 20
    bodies = [r.json() for r in responses]
    assert len({b["command_id"] for b in bodies}) == 1
    assert sorted(b["replayed"] for b in bodies) == [False] + [True] * 19
    assert await _commands(pool) == 1


async def test_twenty_concurrent_requests_with_one_key_get_one_answer(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    action = await _propose(pool, home)
    responses = await asyncio.gather(
        *(_confirm(client, action.id, home.resident.key("same")) for _ in range(20))
    )
    assert [r.status_code for r in responses] == [200] * 20
    assert len({r.content for r in responses}) == 1  # byte for byte
    assert responses[0].json()["replayed"] is False
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 19
    assert await _commands(pool) == 1


async def test_twenty_concurrent_confirms_via_the_python_api_make_one_command(
    db: Database, pool: asyncpg.Pool, home: Home
) -> None:
    action = await _propose(pool, home)
    conns = [await connect(db.dsn) for _ in range(20)]
    try:
        done = await asyncio.gather(
            *(actions.confirm(c, action.id, home.resident.user) for c in conns)
        )
    finally:
        for c in conns:
            await c.close()
    assert len({d.command_id for d in done}) == 1
    assert sorted(d.replayed for d in done) == [False] + [True] * 19
    assert all(d.command == HEATER_OFF for d in done)
    assert await _commands(pool) == 1


async def test_a_forged_id_or_another_users_action_is_not_found(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    action = await _propose(pool, home)
    forged = await _confirm(client, "A" * 22, home.member.key("k"))
    for path in ("confirm", "cancel", "undo"):
        r = await client.post(f"/v1/actions/{action.id}/{path}", headers=home.member.key(path))
        assert r.status_code == 404
        assert r.json() == forged.json()  # the same answer as an id that never existed
    r = await client.get(f"/v1/actions/{action.id}", headers=home.member.headers)
    assert r.json() == forged.json()
    assert forged.json()["error"]["code"] == "not_found"
    assert await _status(pool, action.id) == "proposed"
    # An administrator may follow it, but consent is the proposer's alone.
    seen = await client.get(f"/v1/actions/{action.id}", headers=home.admin.headers)
    assert seen.json()["action"]["id"] == action.id
    r = await _confirm(client, action.id, home.admin.key("k"))
    assert r.status_code == 404
    assert await _commands(pool) == 0


async def test_a_user_who_left_the_household_cannot_confirm(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    action = await _propose(pool, home)
    async with pool.acquire() as conn:
        await conn.execute(
            "DELETE FROM household_members WHERE user_id = $1", home.resident.user.id
        )
    r = await _confirm(client, action.id, home.resident.key("k"))
    assert r.status_code == 404
    assert await _commands(pool) == 0


async def _backdate(conn: Any, action_id: str) -> None:
    await conn.execute(
        "UPDATE actions SET created_at = created_at - interval '1 hour',"
        " expires_at = expires_at - interval '1 hour' WHERE id = $1",
        action_id,
    )


async def test_an_expired_proposal_is_refused_and_marked_expired(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    action = await _propose(pool, home)
    async with pool.acquire() as conn:
        await _backdate(conn, action.id)
    r = await _confirm(client, action.id, home.resident.key("k"))
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "action_expired"
    assert await _status(pool, action.id) == "expired"
    retried = await _confirm(client, action.id, home.resident.key("k"))
    assert retried.content == r.content  # the stored refusal
    log = await client.get(f"/v1/actions/{action.id}", headers=home.resident.headers)
    assert [e["status"] for e in log.json()["events"]] == ["proposed", "expired"]
    assert await _commands(pool) == 0


async def test_a_tiny_ttl_lapses_by_the_database_clock(pool: asyncpg.Pool, home: Home) -> None:
    action = await _propose(pool, home, ttl=timedelta(milliseconds=1))
    await asyncio.sleep(0.05)
    async with pool.acquire() as conn:
        with pytest.raises(Conflict) as refused:
            await actions.confirm(conn, action.id, home.resident.user)
    assert refused.value.code == "action_expired"
    assert await _commands(pool) == 0


async def test_a_cancelled_proposal_cannot_be_confirmed(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    action = await _propose(pool, home)
    for _ in range(2):  # cancelling again changes nothing
        r = await client.post(f"/v1/actions/{action.id}/cancel", headers=home.resident.headers)
        assert r.status_code == 200
        assert r.json()["action"]["status"] == "cancelled"
    r = await _confirm(client, action.id, home.resident.key("k"))
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "action_cancelled"
    assert await _commands(pool) == 0


async def test_a_sent_command_cannot_be_cancelled(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    action = await _propose(pool, home)
    assert (await _confirm(client, action.id, home.resident.key("k"))).status_code == 200
    r = await client.post(f"/v1/actions/{action.id}/cancel", headers=home.resident.headers)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "already_sent"
    assert await _status(pool, action.id) == "sent"


async def test_a_support_user_cannot_confirm(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    action = await _propose(pool, home)
    r = await _confirm(client, action.id, home.support.key("k"))
    assert r.status_code == 403
    assert await _status(pool, action.id) == "proposed"
    assert await _commands(pool) == 0


# -- idempotency keys ------------------------------------------------------------------


async def test_a_key_reused_for_another_request_is_refused(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    first = await _propose(pool, home)
    second = await _propose(pool, home, "Battery", "OFF")
    assert (await _confirm(client, first.id, home.resident.key("k"))).status_code == 200
    for path in (f"{second.id}/confirm", f"{first.id}/cancel", f"{first.id}/undo"):
        r = await client.post(f"/v1/actions/{path}", headers=home.resident.key("k"))
        assert r.status_code == 422, path
        assert r.json()["error"]["code"] == "idempotency_key_reused"
    assert await _status(pool, second.id) == "proposed"
    assert await _commands(pool) == 1
    # Keys are the user's own: another user's "k" is a different key.
    mine = await _propose(pool, home, user=home.member.user)
    assert (await _confirm(client, mine.id, home.member.key("k"))).status_code == 200


async def test_a_retry_with_the_same_key_gets_the_stored_response(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    action = await _propose(pool, home)
    first = await _confirm(client, action.id, home.resident.key("k"))
    async with pool.acquire() as conn:
        # Later state a recomputed answer would show.
        await conn.execute("UPDATE commands SET status = 'acknowledged', acknowledged_at = now()")
        await conn.execute("UPDATE actions SET status = 'acknowledged'")
    # Empty and {} are the same request.
    retry = await client.post(
        f"/v1/actions/{action.id}/confirm", headers=home.resident.key("k"), json={}
    )
    assert retry.content == first.content
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["action"]["status"] == "sent"  # as answered then
    assert retry.json()["replayed"] is False


@pytest.mark.parametrize(
    ("key", "code"),
    [
        (None, "idempotency_key_required"),
        ("", "invalid_idempotency_key"),
        ("has space", "invalid_idempotency_key"),
        ("x" * 129, "invalid_idempotency_key"),
    ],
    ids=["missing", "empty", "space", "too-long"],
)
async def test_confirm_needs_a_valid_idempotency_key(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home, key: str | None, code: str
) -> None:
    action = await _propose(pool, home)
    headers = home.resident.headers if key is None else home.resident.key(key)
    r = await _confirm(client, action.id, headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == code
    undo = await client.post(f"/v1/actions/{action.id}/undo", headers=headers)
    assert undo.json()["error"]["code"] == code
    assert await _status(pool, action.id) == "proposed"


async def test_confirm_refuses_a_body_with_fields(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    action = await _propose(pool, home)
    r = await client.post(
        f"/v1/actions/{action.id}/confirm", headers=home.resident.key("k"), json={"value": "ON"}
    )
    assert r.status_code == 422
    assert await _commands(pool) == 0


# -- the gateway -----------------------------------------------------------------------


async def _sent(client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home) -> dict[str, Any]:
    action = await _propose(pool, home)
    r = await _confirm(client, action.id, home.resident.key(f"k-{action.id}"))
    body: dict[str, Any] = r.json()
    return body


async def test_the_gateway_reads_and_acknowledges_and_the_log_follows(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    sent = await _sent(client, pool, home)
    url = f"/v1/households/{home.id}/commands"
    [command] = (await client.get(url, headers=home.gateway.headers)).json()["commands"]
    assert command["id"] == sent["command_id"]
    assert command["action_id"] == sent["action"]["id"]
    assert list(command["command"].items()) == list(HEATER_OFF.items())
    assert command["status"] == "sent"

    ack = f"/v1/commands/{command['id']}/ack"
    r = await client.post(ack, headers=home.gateway.headers, json={"success": True})
    assert r.status_code == 200
    assert r.json()["status"] == "acknowledged"
    again = await client.post(ack, headers=home.gateway.headers, json={"success": True})
    assert (again.status_code, again.json()) == (200, r.json())
    contra = await client.post(ack, headers=home.gateway.headers, json={"success": False})
    assert contra.status_code == 409
    assert contra.json()["error"]["code"] == "already_acknowledged"

    assert (await client.get(url, headers=home.gateway.headers)).json()["commands"] == []
    done = await client.get(f"{url}?status=acknowledged", headers=home.gateway.headers)
    assert [c["id"] for c in done.json()["commands"]] == [command["id"]]
    log = await client.get(f"/v1/actions/{command['action_id']}", headers=home.resident.headers)
    assert log.json()["action"]["status"] == "acknowledged"
    statuses = [e["status"] for e in log.json()["events"]]
    assert statuses == ["proposed", "confirmed", "sent", "acknowledged"]


async def test_a_failed_command_fails_its_action_with_the_detail(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    sent = await _sent(client, pool, home)
    ack = f"/v1/commands/{sent['command_id']}/ack"
    long = await client.post(
        ack, headers=home.gateway.headers, json={"success": False, "detail": "x" * 501}
    )
    assert long.status_code == 422
    r = await client.post(
        ack, headers=home.gateway.headers, json={"success": False, "detail": "relay stuck"}
    )
    assert r.json()["status"] == "failed"
    log = await client.get(f"/v1/actions/{sent['action']['id']}", headers=home.resident.headers)
    assert log.json()["action"]["status"] == "failed"
    assert log.json()["events"][-1]["status"] == "failed"
    assert log.json()["events"][-1]["detail"] == "relay stuck"


async def test_only_the_households_gateway_or_an_admin_reads_and_acknowledges(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    sent = await _sent(client, pool, home)
    url = f"/v1/households/{home.id}/commands"
    ack = f"/v1/commands/{sent['command_id']}/ack"
    for person in (home.resident, home.support):
        assert (await client.get(url, headers=person.headers)).status_code == 403
        r = await client.post(ack, headers=person.headers, json={"success": True})
        assert r.status_code == 403
    stranger = home.stranger_gateway.headers
    assert (await client.get(url, headers=stranger)).status_code == 404
    r = await client.post(ack, headers=stranger, json={"success": True})
    assert r.status_code == 404
    for forged in (uuid4(), "not-a-uuid"):
        r = await client.post(
            f"/v1/commands/{forged}/ack", headers=stranger, json={"success": True}
        )
        assert r.status_code == 404
    bad = await client.get(f"{url}?status=pending", headers=home.admin.headers)
    assert bad.status_code == 422
    assert len((await client.get(url, headers=home.admin.headers)).json()["commands"]) == 1
    assert await _count(pool, "SELECT count(*) FROM commands WHERE status = 'sent'") == 1


# -- undo ------------------------------------------------------------------------------


async def test_undo_proposes_the_inverse_which_needs_its_own_consent(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    action = await _propose(pool, home)
    early = await client.post(f"/v1/actions/{action.id}/undo", headers=home.resident.key("u0"))
    assert (early.status_code, early.json()["error"]["code"]) == (409, "not_undoable")
    await _confirm(client, action.id, home.resident.key("k"))
    r = await client.post(f"/v1/actions/{action.id}/undo", headers=home.resident.key("u1"))
    assert r.status_code == 201
    inverse = r.json()["action"]
    assert inverse["command"] == {"op": "SET_POWER", "device_name": "Heater", "value": "ON"}
    assert (inverse["status"], inverse["undo_of"]) == ("proposed", action.id)
    assert await _commands(pool) == 1  # nothing sent without consent

    done = await _confirm(client, inverse["id"], home.resident.key("k2"))
    assert done.json()["command"] == inverse["command"]
    assert await _commands(pool) == 2


async def test_only_set_power_can_be_undone(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    action = await _propose(pool, home, "EV charger", "16", op="SET_CHARGE_CURRENT")
    await _confirm(client, action.id, home.resident.key("k"))
    r = await client.post(f"/v1/actions/{action.id}/undo", headers=home.resident.key("u"))
    assert (r.status_code, r.json()["error"]["code"]) == (409, "not_undoable")
    assert await _count(pool, "SELECT count(*) FROM actions") == 1


# -- bounds: the rate limit of every turn, pending proposals per household ---------------


async def _pending(pool: asyncpg.Pool, home: Home, device: str | None = None) -> int:
    if device is None:
        sql = "SELECT count(*) FROM actions WHERE household_id = $1 AND status = 'proposed'"
        return await _count(pool, sql, home.id)
    return await _count(
        pool,
        "SELECT count(*) FROM actions WHERE device_id = $1 AND status = 'proposed'",
        home.devices[device].id,
    )


@pytest.mark.parametrize("store", ["redis", "memory"])
async def test_200_concurrent_proposals_by_one_user_are_rate_limited_and_one_is_pending(
    store: str,
    settings: Any,
    pool: asyncpg.Pool,
    redis_client: Any,
    home: Home,
) -> None:
    from service.app import create_app
    from service.deps import build_deps

    deps = build_deps(
        settings.model_copy(update={"quota_prefix": f"wwtest:{uuid4().hex[:10]}"}),
        pool,
        redis_client if store == "redis" else None,
    )
    limits = deps.quota.limits
    transport = httpx.ASGITransport(app=create_app(deps=deps))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://ww.test") as client:
            responses = await asyncio.gather(
                *(
                    client.post(
                        f"/v1/households/{home.id}/chat",
                        headers=home.resident.headers,
                        json={"messages": [{"role": "user", "content": "turn the heater off"}]},
                    )
                    for _ in range(200)
                )
            )
    finally:
        await deps.live.close()
    statuses = [r.status_code for r in responses]
    answered = statuses.count(200)
    assert 1 <= answered <= limits.rate_per_minute
    assert statuses.count(429) == 200 - answered
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert await _pending(pool, home, "Heater") == 1
    # The others were superseded, each with its reason in the log.
    superseded = await _count(
        pool,
        "SELECT count(*) FROM action_events WHERE status = 'cancelled' AND detail = $1",
        actions.SUPERSEDED_DEVICE,
    )
    assert superseded == answered - 1


async def test_twenty_concurrent_undos_are_rate_limited_and_leave_one_pending_proposal(
    client: httpx.AsyncClient, deps: Any, pool: asyncpg.Pool, home: Home
) -> None:
    action = await _propose(pool, home)
    await _confirm(client, action.id, home.resident.key("k"))
    responses = await asyncio.gather(
        *(
            client.post(f"/v1/actions/{action.id}/undo", headers=home.resident.key(f"u{n}"))
            for n in range(20)
        )
    )
    statuses = [r.status_code for r in responses]
    # Each undo is a proposal and takes a slot of the rate limit, as a turn does.
    assert 1 <= statuses.count(201) <= deps.quota.limits.burst
    assert statuses.count(429) == 20 - statuses.count(201)
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limited"
    assert await _pending(pool, home) == 1
    [pending] = await _pending_rows(pool, home)
    assert pending["undo_of"] == action.id


async def _pending_rows(pool: asyncpg.Pool, home: Home) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return list(
            await conn.fetch(
                "SELECT id, device_id, undo_of FROM actions"
                " WHERE household_id = $1 AND status = 'proposed' ORDER BY created_at",
                home.id,
            )
        )


async def test_pending_proposals_per_household_are_capped_oldest_giving_way(
    pool: asyncpg.Pool, home: Home
) -> None:
    async with pool.acquire() as conn:
        extra = [
            await households.create_device(
                conn,
                household_id=home.id,
                name=f"Plug {n}",
                kind="consumer",
                controllable=True,
                max_watts=2000,
            )
            for n in range(actions.MAX_PENDING + 2)
        ]
    made = []
    for device in extra:
        async with pool.acquire() as conn:
            made.append(
                await actions.propose(
                    conn,
                    household_id=home.id,
                    user=home.resident.user,
                    device=device,
                    op="SET_POWER",
                    value="OFF",
                )
            )
    rows = await _pending_rows(pool, home)
    assert [r["id"] for r in rows] == [a.id for a in made[-actions.MAX_PENDING :]]
    assert await _status(pool, made[0].id) == "cancelled"
    async with pool.acquire() as conn:
        detail = await conn.fetchval(
            "SELECT detail FROM action_events WHERE action_id = $1 AND status = 'cancelled'",
            made[0].id,
        )
    assert detail == actions.SUPERSEDED_CAP


async def test_a_new_proposal_for_a_device_supersedes_the_pending_one(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    first = await _propose(pool, home)
    second = await _propose(pool, home, value="ON", user=home.member.user)
    assert await _status(pool, first.id) == "cancelled"
    assert await _status(pool, second.id) == "proposed"
    refused = await _confirm(client, first.id, home.resident.key("k"))
    assert refused.json()["error"]["code"] == "action_cancelled"
    assert await _commands(pool) == 0


async def test_the_database_refuses_a_second_pending_proposal_for_a_device(
    pool: asyncpg.Pool, home: Home
) -> None:
    await _propose(pool, home)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                """INSERT INTO actions (id, household_id, user_id, device_id, device_name, op,
                                        value, command, expires_at)
                   VALUES ($1, $2, $3, $4, 'Heater', 'SET_POWER', 'ON',
                           json_build_object('op', 'SET_POWER', 'device_name', 'Heater',
                                             'value', 'ON'),
                           now() + interval '5 minutes')""",
                "x" * 20,
                home.id,
                home.resident.user.id,
                home.devices["Heater"].id,
            )
