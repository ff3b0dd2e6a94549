"""Rollups: reads are current to the last reading, a refresh recomputes only the buckets
new or late readings touched, history survives raw retention, and a changed gap cap is
refused until a rebuild."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

import asyncpg
import httpx
import pytest

from evals import reference
from telemetry import access, households, ingest
from telemetry.energy import device_energy
from telemetry.rollups import (
    CapChanged,
    Refresher,
    drop_expired,
    rebuild,
    refresh,
    refresh_all,
)
from telemetry.tariff import Tariff

if TYPE_CHECKING:
    from telemetry.db import Conn
from tests.integration.conftest import MakeUser

CAP = timedelta(minutes=15)
TARIFF = Tariff(currency="EUR", import_price_per_kwh=0.3, export_price_per_kwh=0.1)


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b)) + 1e-9


async def _heater(conn: Conn) -> tuple[UUID, UUID]:
    home = await households.create_household(conn, name="H", timezone="UTC", tariff=TARIFF)
    heater = await households.create_device(
        conn,
        household_id=home.id,
        name="Heater",
        kind="consumer",
        controllable=True,
        max_watts=5000,
    )
    return home.id, heater.id


async def _store(
    conn: Conn,
    device: UUID,
    rows: list[tuple[datetime, float]],
    now: datetime,
    retention: timedelta = timedelta(days=3650),
) -> None:
    admin = await access.get_user_by_email(conn, "root@example.test")
    if admin is None:
        admin = await access.create_user(conn, email="root@example.test", role="admin")
    result = await ingest.store(
        conn,
        [{"device_id": str(device), "ts": ts.isoformat(), "watts": w} for ts, w in rows],
        user_id=admin.id,
        role="admin",
        policy=ingest.Policy(now=now, cap=CAP, retention=retention),
    )
    assert result.accepted == len(rows), result


async def test_today_includes_the_reading_stored_a_moment_ago(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser
) -> None:
    owner, headers = await make_user("resident")
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        household, heater = await _heater(conn)
        await access.add_member(conn, household_id=household, user_id=owner.id, role="owner")
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        rows = [(start + timedelta(minutes=m), 1000.0 + m) for m in range(0, 24 * 60, 5)]
        rows = [(ts, w) for ts, w in rows if ts < now - timedelta(minutes=1)]
        if rows:
            await _store(conn, heater, rows, now)
        await refresh_all(conn, cap=CAP)
        latest = (now - timedelta(seconds=1), 4321.0)
        await _store(conn, heater, [latest], now)
    response = await client.get(
        f"/v1/households/{household}/energy", params={"window": "day"}, headers=headers
    )
    body = response.json()
    window_end = datetime.fromisoformat(body["window"]["end"])
    want = reference.device_wh(
        [*rows, latest], start=start, end=window_end, now=window_end, cap=CAP
    )
    assert close(body["consumption_kwh"], want[0] / 1000)
    assert datetime.fromisoformat(body["fresh_as_of"]) == latest[0]


async def test_a_late_reading_recomputes_only_the_buckets_it_touches(pool: asyncpg.Pool) -> None:
    end = datetime(2026, 5, 10, tzinfo=UTC)
    async with pool.acquire() as conn:
        _, heater = await _heater(conn)
        rows = [
            (end - timedelta(days=5) + timedelta(minutes=m), 500.0) for m in range(0, 5 * 1440, 2)
        ]
        await _store(conn, heater, rows, end)
        first = await refresh(conn, cap=CAP, now=end)
        assert first is not None
        assert first.buckets == 5 * 96
        late = end - timedelta(days=3, minutes=-1)
        await _store(conn, heater, [(late, 4000.0)], end)
        again = await refresh(conn, cap=CAP, now=end)
        assert again is not None
        # [late - cap, late + cap) spans at most three quarter hours.
        assert 1 <= again.buckets <= 3
        got = await device_energy(
            conn, [heater], start=end - timedelta(days=5), end=end, now=end, cap=CAP
        )
        want = reference.device_wh(
            sorted([*rows, (late, 4000.0)]),
            start=end - timedelta(days=5),
            end=end,
            now=end,
            cap=CAP,
        )
        assert close(got[heater].wh_pos, want[0])


async def test_rolled_up_history_outlives_raw_retention(pool: asyncpg.Pool) -> None:
    now = datetime(2026, 9, 1, tzinfo=UTC)
    old_day = now - timedelta(days=100)
    async with pool.acquire() as conn:
        _, heater = await _heater(conn)
        rows = [(old_day + timedelta(minutes=m), 800.0) for m in range(0, 1440, 3)]
        rows += [(now - timedelta(hours=2) + timedelta(minutes=m), 900.0) for m in range(0, 60)]
        await _store(conn, heater, rows, now)
        await refresh_all(conn, cap=CAP, now=now)
        day_end = old_day + timedelta(days=1)
        before = await device_energy(conn, [heater], start=old_day, end=day_end, now=now, cap=CAP)
        removed = await drop_expired(conn, retention=timedelta(days=90), now=now)
        remaining = await conn.fetchval("SELECT count(*) FROM readings")
        after = await device_energy(conn, [heater], start=old_day, end=day_end, now=now, cap=CAP)
    assert removed > 0
    assert remaining == 60
    assert close(before[heater].wh_pos, 800.0 * 24)
    assert close(after[heater].wh_pos, before[heater].wh_pos)


async def test_a_changed_gap_cap_is_refused_until_a_rebuild(pool: asyncpg.Pool) -> None:
    end = datetime(2026, 5, 10, tzinfo=UTC)
    async with pool.acquire() as conn:
        _, heater = await _heater(conn)
        rows = [(end - timedelta(hours=3), 100.0), (end - timedelta(hours=1), 100.0)]
        await _store(conn, heater, rows, end)
        await refresh_all(conn, cap=CAP, now=end)
        wider = timedelta(minutes=30)
        with pytest.raises(CapChanged, match="rebuild"):
            await refresh(conn, cap=wider, now=end)
        await rebuild(conn, cap=wider)
        got = await device_energy(
            conn, [heater], start=end - timedelta(hours=4), end=end, now=end, cap=wider
        )
    # Two readings, each holding for the 30-minute cap: 100 W for an hour in all.
    assert close(got[heater].wh_pos, 100.0)


async def test_the_background_refresher_rolls_up_new_readings_and_stops_cleanly(
    pool: asyncpg.Pool,
) -> None:
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        _, heater = await _heater(conn)
        rows = [(now - timedelta(hours=3) + timedelta(minutes=m), 700.0) for m in range(0, 120)]
        await _store(conn, heater, rows, now)
    want = reference.device_wh(rows, start=rows[0][0], end=now, now=now, cap=CAP)[0]
    refresher = Refresher(pool, cap=CAP, retention=timedelta(days=90), interval=0.05)
    refresher.start()
    try:
        async with asyncio.timeout(10):
            while True:
                async with pool.acquire() as conn:
                    rolled = await conn.fetchval("SELECT coalesce(sum(wh_pos), 0) FROM rollup_1h")
                if close(rolled, want):
                    break
                await asyncio.sleep(0.05)
    finally:
        await refresher.stop()
    assert refresher.running is False
