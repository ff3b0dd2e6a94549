"""The analytics endpoints against the independent reference: every figure of /energy, the
series, top devices and live power, household-scoped like every other read."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from demo.seed import seed_household
from demo.synthetic import demo_household, generate
from evals import reference
from telemetry import access
from telemetry.rollups import refresh_all
from telemetry.tariff import Tariff
from tests.integration.conftest import MakeUser

CAP = timedelta(minutes=15)
DAYS = 2.0
TARIFF = Tariff.model_validate(
    {
        "currency": "EUR",
        "import_price_per_kwh": 0.30,
        "export_price_per_kwh": 0.08,
        "daily_fixed_charge": 0.5,
        "time_of_use": [
            {
                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                "start": "17:00",
                "end": "21:15",
                "import_price_per_kwh": 0.45,
            },
        ],
    }
)


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b)) + 1e-9


@dataclasses.dataclass
class Home:
    household_id: UUID
    device_ids: dict[str, UUID]
    readings: list[reference.Raw]
    end: datetime
    zone: str
    owner: dict[str, str]
    stranger: dict[str, str]


@pytest.fixture
async def home(pool: asyncpg.Pool, make_user: MakeUser) -> Home:
    zone = "Asia/Kathmandu"
    spec = dataclasses.replace(demo_household(), timezone=zone)
    # Readings stop well before now, so the figures do not move while the test runs.
    end = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0)
    owner, owner_headers = await make_user("resident")
    _, stranger_headers = await make_user("resident")
    async with pool.acquire() as conn:
        seeded = await seed_household(
            conn, spec, tariff=TARIFF, days=DAYS, seed=9, end=end, offline_device="fridge"
        )
        await access.add_member(
            conn, household_id=seeded.household.id, user_id=owner.id, role="owner"
        )
        await refresh_all(conn, cap=CAP, now=end - timedelta(hours=5))
    start = end - timedelta(days=DAYS)
    readings = [
        reference.Raw(r.device_key, r.ts, r.watts)
        for r in generate(spec, start=start, days=DAYS, seed=9, offline_device="fridge")
    ]
    return Home(
        seeded.household.id,
        seeded.device_ids,
        readings,
        end,
        zone,
        owner_headers,
        stranger_headers,
    )


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


async def test_energy_figures_match_the_reference(client: httpx.AsyncClient, home: Home) -> None:
    start = home.end - timedelta(hours=30, minutes=7)
    end = home.end - timedelta(minutes=50)
    response = await client.get(
        f"/v1/households/{home.household_id}/energy",
        params={"start": _iso(start), "end": _iso(end)},
        headers=home.owner,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    spec = demo_household()
    want = reference.figures(
        [reference.Dev(d.key, d.kind) for d in spec.devices],
        home.readings,
        start=start,
        end=end,
        now=datetime.now(UTC),
        cap=CAP,
        tariff=TARIFF,
        timezone=home.zone,
    )
    assert body["window"]["timezone"] == home.zone
    for field, expected in [
        ("consumption_kwh", want.consumption_kwh),
        ("solar_kwh", want.solar_kwh),
        ("grid_import_kwh", want.import_kwh),
        ("grid_export_kwh", want.export_kwh),
        ("battery_charge_kwh", want.battery_charge_kwh),
        ("battery_discharge_kwh", want.battery_discharge_kwh),
        ("self_consumption_kwh", want.self_consumption_kwh),
    ]:
        assert close(body[field], expected), (field, body[field], expected)
    assert want.self_consumption_pct is not None
    assert close(body["self_consumption_pct"], want.self_consumption_pct)
    cost = body["cost"]
    assert cost["currency"] == "EUR"
    assert cost["local_days"] == want.local_days
    assert close(cost["fixed_charges"], want.fixed_charges)
    assert close(cost["estimated_cost"], want.cost), (cost, want.cost)
    assert close(cost["export_credit"], want.export_credit)
    assert close(cost["net_cost"], want.net_cost)
    names = {d.name: d.key for d in spec.devices}
    for device in body["devices"]:
        key = names[device["name"]]
        assert close(device["kwh"], want.per_device[key][0])
        assert close(device["kwh_negative"], want.per_device[key][1])
        if key in want.share:
            assert close(device["share_of_consumption"], want.share[key])
    newest = max(r.ts for r in home.readings if r.ts < end)
    assert datetime.fromisoformat(body["fresh_as_of"]) == newest
    assert body["data_quality"]["offline_devices"] == sorted(d.name for d in spec.devices)


async def test_top_devices_are_the_largest_consumers_in_order(
    client: httpx.AsyncClient, home: Home
) -> None:
    params = {"start": _iso(home.end - timedelta(days=1)), "end": _iso(home.end), "limit": "3"}
    response = await client.get(
        f"/v1/households/{home.household_id}/top-devices", params=params, headers=home.owner
    )
    assert response.status_code == 200, response.text
    devices = response.json()["devices"]
    assert len(devices) == 3
    assert [d["kind"] in ("consumer", "ev_charger") for d in devices] == [True] * 3
    assert [d["kwh"] for d in devices] == sorted((d["kwh"] for d in devices), reverse=True)
    for bad in ["21", "0", "²", "-1", "x"]:
        refused = await client.get(
            f"/v1/households/{home.household_id}/top-devices",
            params={"limit": bad},
            headers=home.owner,
        )
        assert refused.status_code == 422, bad


async def test_the_hourly_series_sums_to_the_window_total(
    client: httpx.AsyncClient, home: Home
) -> None:
    params = {"start": _iso(home.end - timedelta(hours=10)), "end": _iso(home.end), "step": "1h"}
    series = await client.get(
        f"/v1/households/{home.household_id}/energy/series", params=params, headers=home.owner
    )
    total = await client.get(
        f"/v1/households/{home.household_id}/energy",
        params={k: v for k, v in params.items() if k != "step"},
        headers=home.owner,
    )
    assert series.status_code == 200, series.text
    buckets = series.json()["buckets"]
    assert 10 <= len(buckets) <= 11  # Kathmandu hours start at :15 UTC
    summed = sum(b["consumption_kwh"] for b in buckets)
    assert close(summed, total.json()["consumption_kwh"])
    assert all(b["start"] < b["end"] for b in buckets)


@pytest.mark.parametrize("path", ["energy", "energy/series", "top-devices", "live"])
async def test_another_household_looks_absent(
    client: httpx.AsyncClient, home: Home, path: str
) -> None:
    theirs = await client.get(f"/v1/households/{home.household_id}/{path}", headers=home.stranger)
    made_up = await client.get(f"/v1/households/{uuid4()}/{path}", headers=home.stranger)
    assert theirs.status_code == made_up.status_code == 404
    assert theirs.json() == made_up.json()


async def test_bad_windows_get_422_with_a_code(client: httpx.AsyncClient, home: Home) -> None:
    url = f"/v1/households/{home.household_id}/energy"
    for params in [{"window": "fortnight"}, {"tz": "Mars/Base"}, {"start": "2026-01-02T00:00:00Z"}]:
        response = await client.get(url, params=params, headers=home.owner)
        assert response.status_code == 422, params
        assert response.json()["error"]["code"].startswith("invalid_")


async def test_live_reports_each_device_and_house_totals(
    client: httpx.AsyncClient, home: Home
) -> None:
    response = await client.get(f"/v1/households/{home.household_id}/live", headers=home.owner)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["devices"]) == 7
    # The newest reading is three hours old: every device is stale, nothing counts as now.
    assert all(d["stale"] for d in body["devices"])
    assert body["house_load_watts"] == 0.0


async def test_cached_answers_last_exactly_until_new_readings_arrive(
    client: httpx.AsyncClient, pool: asyncpg.Pool, home: Home, make_user: MakeUser
) -> None:
    url = f"/v1/households/{home.household_id}/energy"
    start, end = home.end - timedelta(hours=6), home.end - timedelta(hours=1)
    params = {"start": _iso(start), "end": _iso(end)}
    first = (await client.get(url, params=params, headers=home.owner)).json()
    async with pool.acquire() as conn:
        # Behind the service's back (no ingest, so no version bump): rollups are disowned and
        # a device's raw readings vanish. A recomputed answer would differ; a cached one not.
        await conn.execute("DELETE FROM rollup_state")
        await conn.execute("INSERT INTO rollup_state (rolled_until) VALUES ('-infinity')")
        await conn.execute(
            "DELETE FROM readings WHERE device_id = $1", home.device_ids["heat_pump"]
        )
    cached = (await client.get(url, params=params, headers=home.owner)).json()
    assert cached == first

    late_ts = start + timedelta(minutes=30, seconds=7)
    reading = {"device_id": str(home.device_ids["fridge"]), "ts": _iso(late_ts), "watts": 150}
    _, admin = await make_user("admin")
    stored = await client.post("/v1/telemetry", json={"readings": [reading]}, headers=admin)
    assert stored.json()["accepted"] == 1
    fresh = (await client.get(url, params=params, headers=home.owner)).json()
    # The heat pump's raw readings are gone and everything is read raw now: the new answer
    # is computed, not cached, and shows both changes.
    assert fresh["consumption_kwh"] < first["consumption_kwh"]


@pytest.mark.parametrize("name", ["day", "yesterday", "3days", "week", "month", "30days"])
async def test_every_named_window_matches_the_reference(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser, name: str
) -> None:
    zone = "America/New_York"
    spec = dataclasses.replace(demo_household(), timezone=zone)
    end = (datetime.now(UTC) - timedelta(minutes=40)).replace(second=0, microsecond=0)
    owner, headers = await make_user("resident")
    async with pool.acquire() as conn:
        seeded = await seed_household(conn, spec, tariff=TARIFF, days=32, seed=4, end=end)
        await access.add_member(
            conn, household_id=seeded.household.id, user_id=owner.id, role="owner"
        )
        await refresh_all(conn, cap=CAP)
    response = await client.get(
        f"/v1/households/{seeded.household.id}/energy", params={"window": name}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    start = datetime.fromisoformat(body["window"]["start"])
    stop = datetime.fromisoformat(body["window"]["end"])
    assert body["window"]["name"] == name
    want = reference.figures(
        [reference.Dev(d.key, d.kind) for d in spec.devices],
        [
            reference.Raw(r.device_key, r.ts, r.watts)
            for r in generate(spec, start=end - timedelta(days=32), days=32, seed=4)
        ],
        start=start,
        end=stop,
        now=stop,
        cap=CAP,
        tariff=TARIFF,
        timezone=zone,
    )
    assert close(body["consumption_kwh"], want.consumption_kwh)
    assert close(body["grid_import_kwh"], want.import_kwh)
    assert close(body["grid_export_kwh"], want.export_kwh)
    assert close(body["cost"]["estimated_cost"], want.cost)
    assert body["cost"]["local_days"] == want.local_days
