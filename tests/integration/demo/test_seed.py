"""Seeding synthetic households: every generated reading lands once, the hot table holds
each device's newest reading, and topping up continues without overlap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from demo.seed import DEMO_TARIFF, extend_household, seed_household
from demo.synthetic import demo_household, generate
from telemetry.rollups import refresh_all

END = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)  # a DST change day in Europe/Berlin


async def test_seeding_stores_exactly_the_generated_readings(pool: asyncpg.Pool) -> None:
    spec = demo_household()
    async with pool.acquire() as conn:
        seeded = await seed_household(
            conn, spec, tariff=DEMO_TARIFF, days=1, seed=7, end=END, offline_device="fridge"
        )
        stored = await conn.fetch(
            "SELECT d.name, count(*) AS n, max(r.ts) AS newest FROM readings r"
            " JOIN devices d ON d.id = r.device_id WHERE d.household_id = $1 GROUP BY d.name",
            seeded.household.id,
        )
        latest = await conn.fetch(
            "SELECT d.name, l.ts FROM device_latest l JOIN devices d ON d.id = l.device_id"
        )
    expected = list(
        generate(spec, start=END - timedelta(days=1), days=1, seed=7, offline_device="fridge")
    )
    names = {d.key: d.name for d in spec.devices}
    per_device: dict[str, int] = {}
    for reading in expected:
        per_device[names[reading.device_key]] = per_device.get(names[reading.device_key], 0) + 1
    assert seeded.readings == len(expected)
    assert {r["name"]: r["n"] for r in stored} == per_device
    assert {r["name"]: r["ts"] for r in latest} == {r["name"]: r["newest"] for r in stored}
    fridge_newest = next(r["newest"] for r in stored if r["name"] == "Fridge")
    assert fridge_newest <= END - timedelta(hours=6)


async def test_topping_up_continues_after_the_newest_reading(pool: asyncpg.Pool) -> None:
    spec = demo_household()
    async with pool.acquire() as conn:
        seeded = await seed_household(conn, spec, tariff=DEMO_TARIFF, days=0.5, seed=3, end=END)
        before = await conn.fetchval("SELECT max(ts) FROM readings")
        await refresh_all(conn, cap=timedelta(minutes=15), now=END)
        later = END + timedelta(hours=2)
        added = await extend_household(conn, spec, seeded.household.id, seed=3, end=later)
        # Only the new readings' ranges are dirty, not the history before them.
        first_dirty = await conn.fetchval("SELECT min(from_ts) FROM rollup_dirty")
        again = await extend_household(conn, spec, seeded.household.id, seed=3, end=later)
        after = await conn.fetchval("SELECT max(ts) FROM readings")
        newest = await conn.fetchval("SELECT max(ts) FROM device_latest")
        total = await conn.fetchval("SELECT count(*) FROM readings")
    assert added > 0
    assert first_dirty >= before - timedelta(minutes=30)
    assert again == 0
    assert before < after <= later
    assert newest == after
    assert total == seeded.readings + added
