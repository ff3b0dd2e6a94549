"""Telemetry ingestion: every reading is judged on its own, good ones commit together,
resending is harmless, and a failure mid-batch leaves nothing behind."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from telemetry import access, households
from telemetry.tariff import Tariff
from tests.integration.conftest import MakeUser

TARIFF = Tariff(currency="EUR", import_price_per_kwh=0.3, export_price_per_kwh=0.1)


@dataclass(frozen=True)
class Home:
    heater: UUID
    grid: UUID
    other_heater: UUID
    gateway: dict[str, str]
    resident: dict[str, str]
    support: dict[str, str]


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


@pytest.fixture
async def home(pool: asyncpg.Pool, make_user: MakeUser) -> Home:
    gateway, gateway_headers = await make_user("gateway")
    resident, resident_headers = await make_user("resident")
    support, support_headers = await make_user("support")
    async with pool.acquire() as conn:
        mine = await households.create_household(conn, name="Mine", timezone="UTC", tariff=TARIFF)
        theirs = await households.create_household(
            conn, name="Theirs", timezone="UTC", tariff=TARIFF
        )
        heater = await households.create_device(
            conn,
            household_id=mine.id,
            name="Heater",
            kind="consumer",
            controllable=True,
            max_watts=3000,
        )
        grid = await households.create_device(
            conn,
            household_id=mine.id,
            name="Grid",
            kind="grid",
            controllable=False,
            max_watts=20000,
        )
        other = await households.create_device(
            conn,
            household_id=theirs.id,
            name="Heater",
            kind="consumer",
            controllable=True,
            max_watts=3000,
        )
        await access.add_member(conn, household_id=mine.id, user_id=gateway.id, role="gateway")
        await access.add_member(conn, household_id=mine.id, user_id=resident.id, role="owner")
        await access.assign_support(conn, household_id=mine.id, user_id=support.id, expires_at=None)
    return Home(heater.id, grid.id, other.id, gateway_headers, resident_headers, support_headers)


async def _count(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM readings"))


async def test_each_bad_reading_is_reported_and_the_good_ones_are_stored(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    t = now - timedelta(minutes=30)
    heater, grid = str(home.heater), str(home.grid)
    readings: list[object] = [
        {"device_id": heater, "ts": _iso(t), "watts": 1500},  # 0 good
        {"device_id": str(uuid4()), "ts": _iso(t), "watts": 1},  # 1
        {"device_id": str(home.other_heater), "ts": _iso(t), "watts": 1},  # 2
        {"device_id": "not-a-uuid", "ts": _iso(t), "watts": 1},  # 3
        {"device_id": heater, "ts": _iso(t + timedelta(seconds=1)), "watts": "12"},  # 4
        {"device_id": heater, "ts": _iso(t + timedelta(seconds=2)), "watts": True},  # 5
        {"device_id": heater, "ts": _iso(t + timedelta(seconds=3))},  # 6
        {"device_id": heater, "ts": _iso(t + timedelta(seconds=4)), "watts": -5},  # 7
        {"device_id": heater, "ts": _iso(t + timedelta(seconds=5)), "watts": 3000.5},  # 8
        {"device_id": heater, "ts": "2026-11-22T10:00:00", "watts": 1},  # 9
        {"device_id": heater, "ts": "yesterday", "watts": 1},  # 10
        {"device_id": heater, "ts": 1790000000, "watts": 1},  # 11
        {"device_id": heater, "ts": _iso(now + timedelta(minutes=10)), "watts": 1},  # 12
        {"device_id": heater, "ts": _iso(now - timedelta(days=91)), "watts": 1},  # 13
        {"device_id": grid, "ts": _iso(t), "watts": -4200.25},  # 14 good: export
        "not an object",  # 15
        {"device_id": heater, "ts": _iso(t + timedelta(minutes=1)), "watts": 0},  # 16 good
        {"device_id": [heater], "ts": _iso(t), "watts": 1},  # 17 unhashable id
        {"device_id": {"id": heater}, "ts": _iso(t), "watts": 1},  # 18
        {"device_id": heater, "ts": _iso(t + timedelta(seconds=6)), "watts": 10**400},  # 19
    ]
    body = json.dumps({"readings": readings})
    response = await client.post(
        "/v1/telemetry", content=body, headers=home.gateway | {"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    result = response.json()
    codes = {r["index"]: r["code"] for r in result["rejected"]}
    assert codes == {
        1: "unknown_device",
        2: "unknown_device",
        3: "unknown_device",
        4: "invalid_watts",
        5: "invalid_watts",
        6: "invalid_watts",
        7: "invalid_sign",
        8: "implausible_watts",
        9: "invalid_timestamp",
        10: "invalid_timestamp",
        11: "invalid_timestamp",
        12: "future_timestamp",
        13: "too_old",
        15: "invalid_reading",
        17: "unknown_device",
        18: "unknown_device",
        19: "invalid_watts",
    }
    assert all(r["message"] for r in result["rejected"])
    assert (result["accepted"], result["duplicates"]) == (3, 0)
    assert await _count(pool) == 3
    async with pool.acquire() as conn:
        kept = await conn.fetch("SELECT code FROM rejected_readings ORDER BY code")
    assert [r["code"] for r in kept] == ["implausible_watts", "invalid_sign"]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
async def test_non_finite_watts_are_invalid(
    client: httpx.AsyncClient, home: Home, token: str
) -> None:
    ts = _iso(datetime.now(UTC) - timedelta(minutes=1))
    body = f'{{"readings": [{{"device_id": "{home.grid}", "ts": "{ts}", "watts": {token}}}]}}'
    response = await client.post(
        "/v1/telemetry", content=body, headers=home.gateway | {"content-type": "application/json"}
    )
    assert response.json()["rejected"][0]["code"] == "invalid_watts"


async def test_resending_a_batch_stores_nothing_twice_and_conflicts_keep_the_first_value(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    batch = [
        {
            "device_id": str(home.heater),
            "ts": _iso(start + timedelta(minutes=i)),
            "watts": 100.0 + i,
        }
        for i in range(20)
    ]
    first = (
        await client.post("/v1/telemetry", json={"readings": batch}, headers=home.gateway)
    ).json()
    again = (
        await client.post("/v1/telemetry", json={"readings": batch}, headers=home.gateway)
    ).json()
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (20, 0, [])
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 20, [])

    changed = [dict(batch[3], watts=999.0), dict(batch[4]), batch[0] | {"watts": 5.0}, batch[0]]
    mixed = (
        await client.post("/v1/telemetry", json={"readings": changed}, headers=home.gateway)
    ).json()
    assert mixed["accepted"] == 0
    assert mixed["duplicates"] == 2
    assert [(r["index"], r["code"]) for r in mixed["rejected"]] == [
        (0, "conflicting_duplicate"),
        (2, "conflicting_duplicate"),
    ]
    async with pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT watts FROM readings WHERE device_id = $1 AND ts = $2",
            home.heater,
            start + timedelta(minutes=3),
        )
    assert stored == 103.0
    assert await _count(pool) == 20


async def test_repeats_within_one_batch_count_once(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    ts = _iso(datetime.now(UTC) - timedelta(minutes=2))
    reading = {"device_id": str(home.heater), "ts": ts, "watts": 10}
    batch = [reading, reading, reading | {"watts": 11}]
    result = (
        await client.post("/v1/telemetry", json={"readings": batch}, headers=home.gateway)
    ).json()
    assert (result["accepted"], result["duplicates"]) == (1, 1)
    assert [(r["index"], r["code"]) for r in result["rejected"]] == [(2, "conflicting_duplicate")]
    assert await _count(pool) == 1


async def test_ndjson_is_accepted_and_a_broken_line_is_reported_at_its_index(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=10)
    lines = [
        json.dumps(
            {"device_id": str(home.heater), "ts": _iso(start + timedelta(minutes=i)), "watts": 50}
        )
        for i in range(3)
    ]
    lines.insert(1, '{"device_id": broken')
    body = "\n".join(lines) + "\n"
    response = await client.post(
        "/v1/telemetry",
        content=body,
        headers=home.gateway | {"content-type": "application/x-ndjson"},
    )
    result = response.json()
    assert result["accepted"] == 3
    assert [(r["index"], r["code"]) for r in result["rejected"]] == [(1, "invalid_json")]
    assert await _count(pool) == 3


async def test_too_many_readings_or_bytes_get_413_and_nothing_is_stored(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    ts = _iso(datetime.now(UTC) - timedelta(minutes=1))
    one = {"device_id": str(home.heater), "ts": ts, "watts": 1}
    many = await client.post(
        "/v1/telemetry", json={"readings": [one] * 50_001}, headers=home.gateway
    )
    assert many.status_code == 413
    assert "50000" in many.json()["error"]["message"]
    padded = json.dumps({"readings": [one], "pad": "x" * (8 * 1024 * 1024)})
    big = await client.post(
        "/v1/telemetry", content=padded, headers=home.gateway | {"content-type": "application/json"}
    )
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "payload_too_large"
    assert await _count(pool) == 0


async def test_a_database_failure_mid_batch_stores_nothing_and_a_resend_succeeds(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            """
            CREATE FUNCTION fail_on_4242() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.watts = 4242.5 THEN RAISE EXCEPTION 'disk on fire'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER fail_on_4242 BEFORE INSERT ON readings
                FOR EACH ROW EXECUTE FUNCTION fail_on_4242();
            """
        )
    start = datetime.now(UTC) - timedelta(hours=2)
    batch = [
        {"device_id": str(home.grid), "ts": _iso(start + timedelta(minutes=i)), "watts": float(i)}
        for i in range(100)
    ]
    batch[70]["watts"] = 4242.5
    failed = await client.post("/v1/telemetry", json={"readings": batch}, headers=home.gateway)
    assert failed.status_code == 503
    assert failed.json()["error"]["code"] == "database_unavailable"
    assert await _count(pool) == 0
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM device_latest") == 0
        assert await conn.fetchval("SELECT count(*) FROM rollup_dirty") == 0
        await conn.execute("DROP TRIGGER fail_on_4242 ON readings")
    resent = await client.post("/v1/telemetry", json={"readings": batch}, headers=home.gateway)
    assert resent.json()["accepted"] == 100
    assert await _count(pool) == 100


async def test_the_hot_table_keeps_the_newest_reading_when_a_late_one_arrives(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    now = datetime.now(UTC)
    newest = {"device_id": str(home.heater), "ts": _iso(now - timedelta(minutes=1)), "watts": 700}
    late = {"device_id": str(home.heater), "ts": _iso(now - timedelta(minutes=40)), "watts": 5}
    await client.post("/v1/telemetry", json={"readings": [newest]}, headers=home.gateway)
    await client.post("/v1/telemetry", json={"readings": [late]}, headers=home.gateway)
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT ts, watts FROM device_latest WHERE device_id = $1", home.heater
        )
    assert row is not None
    assert row["watts"] == 700
    assert _iso(row["ts"]) == newest["ts"]


async def test_residents_write_their_own_household_and_support_may_not_write(
    client: httpx.AsyncClient, home: Home
) -> None:
    ts = _iso(datetime.now(UTC) - timedelta(minutes=1))
    mine = {"device_id": str(home.heater), "ts": ts, "watts": 1}
    theirs = {"device_id": str(home.other_heater), "ts": ts, "watts": 1}
    result = (
        await client.post("/v1/telemetry", json={"readings": [mine, theirs]}, headers=home.resident)
    ).json()
    assert result["accepted"] == 1
    assert [(r["index"], r["code"]) for r in result["rejected"]] == [(1, "unknown_device")]
    refused = await client.post("/v1/telemetry", json={"readings": [mine]}, headers=home.support)
    assert refused.status_code == 403


async def test_a_body_that_is_not_a_batch_gets_422_and_not_json_400(
    client: httpx.AsyncClient, home: Home
) -> None:
    for body, status in [("[1, 2]", 422), ("{}", 422), ("{not json", 400)]:
        response = await client.post(
            "/v1/telemetry",
            content=body,
            headers=home.gateway | {"content-type": "application/json"},
        )
        assert response.status_code == status, body


async def test_a_batch_over_several_chunks_reports_exact_indices_and_survives_a_late_conflict(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    start = datetime.now(UTC) - timedelta(days=20)
    batch: list[dict[str, object]] = [
        {"device_id": str(home.grid), "ts": _iso(start + timedelta(seconds=i)), "watts": 1.0}
        for i in range(25_000)
    ]
    stored_before = dict(batch[24_000])
    first = await client.post(
        "/v1/telemetry", json={"readings": [stored_before]}, headers=home.gateway
    )
    assert first.json()["accepted"] == 1
    batch[12_345]["watts"] = "oops"  # a rejection in the second chunk
    batch[24_999]["device_id"] = str(uuid4())  # and one in the third
    response = await client.post("/v1/telemetry", json={"readings": batch}, headers=home.gateway)
    result = response.json()
    assert [(r["index"], r["code"]) for r in result["rejected"]] == [
        (12_345, "invalid_watts"),
        (24_999, "unknown_device"),
    ]
    # The third chunk holds a stored key: every COPY is undone and the batch goes in again.
    assert (result["accepted"], result["duplicates"]) == (24_997, 1)
    assert await _count(pool) == 24_998


async def test_stored_readings_mark_only_the_ranges_they_change_dirty(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home
) -> None:
    # Three hours of minute readings and one from two days before, in one batch: the dense
    # hours make one range, the old reading its own; nothing in between is dirty.
    cap = timedelta(minutes=15)
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    dense = [end - timedelta(minutes=m) for m in range(180)]
    old = end - timedelta(days=2)
    readings = [{"device_id": str(home.heater), "ts": _iso(ts), "watts": 100} for ts in dense]
    readings.insert(90, {"device_id": str(home.heater), "ts": _iso(old), "watts": 100})
    response = await client.post("/v1/telemetry", json={"readings": readings}, headers=home.gateway)
    assert response.json()["accepted"] == 181
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT from_ts, to_ts FROM rollup_dirty WHERE device_id = $1 ORDER BY from_ts",
            home.heater,
        )
    spans = [(r["from_ts"], r["to_ts"]) for r in rows]
    # Ranges start on the quarter hour at or before first - cap and end at last + cap.
    assert spans[0][1] - spans[0][0] < timedelta(hours=1)
    assert spans[0][0] <= old - cap < old + cap == spans[0][1]
    assert spans[1][0] <= min(dense) - cap < spans[1][0] + timedelta(minutes=15)
    assert spans[1][1] == max(dense) + cap
    assert len(spans) == 2
