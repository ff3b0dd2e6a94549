"""The SQL energy path against the independent reference (tests/reference.py), to 1e-9
relative: raw reads, rolled-up reads, reads over dirty ranges after late readings, and the
15-minute series, on DST days and in zones with 30- and 45-minute offsets."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from demo.seed import seed_household
from demo.synthetic import HouseholdSpec, Reading, demo_household, generate
from evals import reference
from telemetry import access, ingest
from telemetry.energy import bucket_energy, device_energy
from telemetry.rollups import refresh_all
from telemetry.tariff import Tariff

if TYPE_CHECKING:
    from telemetry.db import Conn

CAP = timedelta(minutes=15)
DAYS = 3.5
TARIFF = Tariff.model_validate(
    {
        "currency": "EUR",
        "import_price_per_kwh": 0.30,
        "export_price_per_kwh": 0.08,
        "daily_fixed_charge": 0.5,
        "time_of_use": [
            {"days": ["sat", "sun"], "start": "02:00", "end": "03:00", "import_price_per_kwh": 0.1},
            {
                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                "start": "17:00",
                "end": "21:15",
                "import_price_per_kwh": 0.45,
            },
        ],
    }
)

# (timezone, a local day of interest): DST changes, and fixed odd offsets.
CASES = [
    ("Europe/Berlin", date(2026, 3, 29)),  # 23-hour day
    ("Europe/Berlin", date(2025, 10, 26)),  # 25-hour day
    ("America/New_York", date(2026, 3, 8)),
    ("Asia/Kathmandu", date(2026, 6, 1)),  # +05:45
    ("Pacific/Chatham", date(2026, 4, 5)),  # +13:45 -> +12:45
    ("Australia/Lord_Howe", date(2026, 4, 5)),  # 30-minute DST shift
]


def local_midnight(day: date, zone: str) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b)) + 1e-9


@dataclasses.dataclass
class Scenario:
    spec: HouseholdSpec
    end: datetime
    device_ids: dict[str, UUID]
    readings: list[reference.Raw]
    windows: list[tuple[datetime, datetime]]

    @property
    def devices(self) -> list[reference.Dev]:
        return [reference.Dev(d.key, d.kind) for d in self.spec.devices]


def _raw(readings: Iterable[Reading]) -> list[reference.Raw]:
    return [reference.Raw(r.device_key, r.ts, r.watts) for r in readings]


async def _scenario(conn: Conn, zone: str, day: date) -> Scenario:
    spec = dataclasses.replace(demo_household(), timezone=zone)
    end = local_midnight(day + timedelta(days=2), zone).replace(second=0, microsecond=0)
    start = end - timedelta(days=DAYS)
    seeded = await seed_household(
        conn, spec, tariff=TARIFF, days=DAYS, seed=7, end=end, offline_device="fridge"
    )
    readings = _raw(generate(spec, start=start, days=DAYS, seed=7, offline_device="fridge"))
    midnight = local_midnight(day, zone)
    next_midnight = local_midnight(day + timedelta(days=1), zone)
    windows = [
        (midnight, next_midnight),
        (local_midnight(day - timedelta(days=1), zone), midnight),
        (start, end),
        (midnight + timedelta(minutes=7, seconds=13), next_midnight + timedelta(hours=2)),
        (midnight + timedelta(hours=13, minutes=1), midnight + timedelta(hours=13, minutes=9)),
        (end - timedelta(hours=7, seconds=1), end + timedelta(hours=1)),
    ]
    return Scenario(spec, end, seeded.device_ids, readings, windows)


async def _assert_matches(conn: Conn, s: Scenario, label: str) -> None:
    ids = [s.device_ids[d.key] for d in s.spec.devices]
    per_device = reference.dedupe(s.readings)
    for start, end in s.windows:
        got = await device_energy(conn, ids, start=start, end=end, now=s.end, cap=CAP)
        for d in s.spec.devices:
            want = reference.device_wh(
                per_device.get(d.key, []), start=start, end=end, now=s.end, cap=CAP
            )
            have = got[s.device_ids[d.key]]
            context = (
                label,
                d.key,
                start,
                end,
                have,
                want,
            )
            assert close(have.wh_pos, want[0]), context
            assert close(have.wh_neg, want[1]), context


@pytest.mark.parametrize(("zone", "day"), CASES, ids=[f"{z}-{d}" for z, d in CASES])
async def test_energy_matches_the_reference_raw_rolled_and_after_late_readings(
    pool: asyncpg.Pool, zone: str, day: date
) -> None:
    async with pool.acquire() as conn:
        s = await _scenario(conn, zone, day)
        await _assert_matches(conn, s, "raw")
        await refresh_all(conn, cap=CAP, now=s.end)
        for level in ("rollup_15m", "rollup_1h", "rollup_1d"):
            assert await conn.fetchval(f"SELECT count(*) FROM {level}") > 0, level
        await _assert_matches(conn, s, "rolled")

        # Late readings between stored ones, exact resends and conflicting values, through
        # the ingest path.
        admin = await access.create_user(conn, email="admin@example.test", role="admin")
        heat_pump = s.device_ids["heat_pump"]
        mine = [r for r in s.readings if r.device == "heat_pump"][100:400:3]
        late = [
            reference.Raw("heat_pump", r.ts + timedelta(seconds=20), r.watts / 2 + 1) for r in mine
        ]
        batch: list[object] = [
            {"device_id": str(heat_pump), "ts": r.ts.isoformat(), "watts": r.watts}
            for r in late + mine[:10]
        ]
        batch += [
            {"device_id": str(heat_pump), "ts": r.ts.isoformat(), "watts": r.watts + 1}
            for r in mine[10:15]
        ]
        result = await ingest.store(
            conn,
            batch,
            user_id=admin.id,
            role="admin",
            policy=ingest.Policy(now=s.end, cap=CAP, retention=timedelta(days=3650)),
        )
        assert (result.accepted, result.duplicates) == (len(late), 10)
        assert {r.code for r in result.rejected} == {"conflicting_duplicate"}
        s.readings += late
        await _assert_matches(conn, s, "dirty")
        await refresh_all(conn, cap=CAP, now=s.end)
        assert (
            await conn.fetchval("SELECT count(*) FROM rollup_dirty WHERE from_ts < $1", s.end) == 0
        )
        await _assert_matches(conn, s, "re-rolled")


@pytest.mark.parametrize(("zone", "day"), CASES[:1] + CASES[4:5], ids=["Berlin", "Chatham"])
async def test_the_15_minute_series_matches_the_reference_per_local_hour(
    pool: asyncpg.Pool, zone: str, day: date
) -> None:
    async with pool.acquire() as conn:
        s = await _scenario(conn, zone, day)
        await refresh_all(conn, cap=CAP, now=s.end - timedelta(hours=20))
        start = local_midnight(day, zone) + timedelta(minutes=5)
        end = local_midnight(day + timedelta(days=1), zone)
        zone_info = ZoneInfo(zone)
        edges = [start]
        at = start.astimezone(zone_info).replace(minute=0, second=0) + timedelta(hours=1)
        while at.astimezone(UTC) < end:
            edges.append(at.astimezone(UTC))
            at = (at.astimezone(UTC) + timedelta(hours=1)).astimezone(zone_info)
        edges.append(end)
        ids = [s.device_ids[d.key] for d in s.spec.devices]
        got = await bucket_energy(conn, ids, start=start, end=end, now=s.end, cap=CAP)
        want = reference.series(s.devices, s.readings, edges=edges, now=s.end, cap=CAP)
    for d in s.spec.devices:
        sums = [[0.0, 0.0] for _ in edges[:-1]]
        for b in got[s.device_ids[d.key]]:
            slot = max(i for i, e in enumerate(edges[:-1]) if e <= max(b.bucket, start))
            sums[slot][0] += b.wh_pos
            sums[slot][1] += b.wh_neg
        for i, (pos, neg) in enumerate(sums):
            expected = want[i].get(d.key, (0.0, 0.0))
            assert close(pos, expected[0]), (d.key, edges[i], pos, expected)
            assert close(neg, expected[1]), (d.key, edges[i], neg, expected)
