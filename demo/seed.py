"""Writes synthetic households (demo.synthetic) into the database: the household, its
devices and readings, and the hot table of latest readings. Used by `wattwise seed-demo`,
the demo and benchmarks; tests use it for realistic fixtures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from demo.synthetic import HouseholdSpec, Reading, demo_household, generate
from telemetry import access
from telemetry.households import Household, create_device, create_household, newest_readings
from telemetry.ingest import load_history
from telemetry.rollups import refresh_all
from telemetry.tariff import Tariff

if TYPE_CHECKING:
    from collections.abc import Iterable

    from telemetry.db import Conn

DEMO_TARIFF = Tariff(
    currency="EUR", import_price_per_kwh=0.32, export_price_per_kwh=0.08, daily_fixed_charge=0.45
)
DEMO_OFFLINE_DEVICE = "fridge"
DEFAULT_CAP = timedelta(minutes=15)


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
    cap: timedelta = DEFAULT_CAP,
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
        count = await _load(conn, device_ids, readings, cap)
    return Seeded(household, device_ids, count)


async def seed_owned(
    conn: Conn,
    spec: HouseholdSpec,
    *,
    owner: str,
    tariff: Tariff,
    days: float,
    seed: int,
    end: datetime | None = None,
) -> Seeded:
    """seed_household(), owned by the user with the email `owner` (a resident, created if
    there is none). One transaction."""
    async with conn.transaction():
        user = await access.get_user_by_email(conn, owner)
        if user is None:
            user = await access.create_user(conn, email=owner, role="resident")
        seeded = await seed_household(conn, spec, tariff=tariff, days=days, seed=seed, end=end)
        await access.add_member(
            conn, household_id=seeded.household.id, user_id=user.id, role="owner"
        )
    return seeded


async def roll_up(conn: Conn, *, now: datetime | None = None, cap: timedelta = DEFAULT_CAP) -> None:
    """Bring the rollups of the seeded readings up to `now`, as the service's refresher
    would (a seed marks its ranges dirty and leaves them)."""
    await refresh_all(conn, cap=cap, now=now)


async def _load(
    conn: Conn, device_ids: dict[str, UUID], readings: Iterable[Reading], cap: timedelta
) -> int:
    rows = ((device_ids[r.device_key], r.ts, r.watts) for r in readings)
    return await load_history(conn, rows, cap=cap)


async def spec_devices(
    conn: Conn, spec: HouseholdSpec, household_id: UUID
) -> tuple[dict[str, UUID], datetime | None]:
    """The household's devices by the spec's keys (matched by name; one the database lacks
    is left out) and the household's newest reading (the hot table holds each device's)."""
    newest = await newest_readings(conn, household_id)
    ids = {d.key: newest[d.name.lower()][0] for d in spec.devices if d.name.lower() in newest}
    return ids, max((ts for _, ts in newest.values() if ts is not None), default=None)


async def extend_household(
    conn: Conn,
    spec: HouseholdSpec,
    household_id: UUID,
    *,
    seed: int,
    end: datetime | None = None,
    cap: timedelta = DEFAULT_CAP,
) -> int:
    """Continue a seeded household's telemetry from its newest reading up to `end` (now).

    Devices are matched to the spec by name. Returns how many readings were added.
    """
    device_ids, newest = await spec_devices(conn, spec, household_id)
    if newest is None or len(device_ids) != len(spec.devices):
        return 0
    # Start after the newest reading of any device, so nothing added can collide with it.
    start = newest.replace(second=0, microsecond=0) + timedelta(minutes=1)
    finish = (end or datetime.now(UTC)).replace(second=0, microsecond=0)
    if finish <= start:
        return 0
    days = (finish - start) / timedelta(days=1)
    async with conn.transaction():
        return await _load(conn, device_ids, generate(spec, start=start, days=days, seed=seed), cap)


async def seed_demo(
    conn: Conn, *, days: float = 30, seed: int = 1, cap: timedelta = DEFAULT_CAP
) -> Seeded:
    return await seed_household(
        conn,
        demo_household(),
        tariff=DEMO_TARIFF,
        days=days,
        seed=seed,
        offline_device=DEMO_OFFLINE_DEVICE,
        cap=cap,
    )
