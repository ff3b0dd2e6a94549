"""Writes synthetic households (telemetry.synthetic) into the database: the household, its
devices and readings, and the hot table of latest readings. Used by `wattwise seed-demo`,
the demo and benchmarks; tests use it for realistic fixtures.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from telemetry.households import Household, create_device, create_household
from telemetry.synthetic import HouseholdSpec, demo_household, generate
from telemetry.tariff import Tariff

if TYPE_CHECKING:
    from telemetry.db import Conn

DEMO_TARIFF = Tariff(
    currency="EUR", import_price_per_kwh=0.32, export_price_per_kwh=0.08, daily_fixed_charge=0.45
)
DEMO_OFFLINE_DEVICE = "fridge"
_COPY_BATCH = 50_000


@dataclass(frozen=True)
class Seeded:
    household: Household
    device_ids: dict[str, UUID]
    readings: int


async def seed_household(
    conn: Conn,
    spec: HouseholdSpec,
    *,
    tariff: Tariff,
    days: float,
    seed: int,
    end: datetime | None = None,
    offline_device: str | None = None,
) -> Seeded:
    """Create the household and its devices and load `days` of readings ending at `end`.

    One transaction: a failed seed leaves nothing half-written.
    """
    finish = (end or datetime.now(UTC)).replace(second=0, microsecond=0)
    start = finish - timedelta(days=days)
    async with conn.transaction():
        household = await create_household(
            conn, name=spec.name, timezone=spec.timezone, tariff=tariff
        )
        device_ids: dict[str, UUID] = {}
        for device in spec.devices:
            created = await create_device(
                conn,
                household_id=household.id,
                name=device.name,
                kind=device.kind,
                controllable=device.controllable,
                max_watts=device.max_watts,
            )
            device_ids[device.key] = created.id
        readings = generate(spec, start=start, days=days, seed=seed, offline_device=offline_device)
        rows = ((device_ids[r.device_key], r.ts, r.watts) for r in readings)
        count = 0
        while batch := list(itertools.islice(rows, _COPY_BATCH)):
            await conn.copy_records_to_table(
                "readings", records=batch, columns=["device_id", "ts", "watts"]
            )
            count += len(batch)
        await conn.execute(
            """
            INSERT INTO device_latest (device_id, ts, watts)
            SELECT DISTINCT ON (r.device_id) r.device_id, r.ts, r.watts
              FROM readings r
             WHERE r.device_id = ANY($1::uuid[])
             ORDER BY r.device_id, r.ts DESC
            ON CONFLICT (device_id) DO UPDATE SET ts = EXCLUDED.ts, watts = EXCLUDED.watts,
                   updated_at = now()
             WHERE device_latest.ts < EXCLUDED.ts
            """,
            list(device_ids.values()),
        )
    return Seeded(household, device_ids, count)


async def seed_demo(conn: Conn, *, days: float = 30, seed: int = 1) -> Seeded:
    return await seed_household(
        conn,
        demo_household(),
        tariff=DEMO_TARIFF,
        days=days,
        seed=seed,
        offline_device=DEMO_OFFLINE_DEVICE,
    )
