"""The canonical household figures: energy by kind and device, self-consumption, cost,
top devices, series and live power. Every figure comes from telemetry.energy and carries
fresh_as_of; money is in the household currency's major unit, unrounded (rounding is for
display).
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, get_args
from uuid import UUID
from zoneinfo import ZoneInfo

from telemetry.advice import runs
from telemetry.energy import BucketEnergy, DeviceEnergy, bucket_energy, device_energy
from telemetry.households import Device, Household, list_devices
from telemetry.tariff import Weekday

if TYPE_CHECKING:
    from telemetry.db import Conn
    from telemetry.windows import Window

WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)
CONSUMING = ("consumer", "ev_charger")


@dataclass(frozen=True)
class DeviceFigure:
    device: Device
    kwh: float
    kwh_negative: float
    share: float | None  # of consumption, for consuming devices

    def public(self) -> dict[str, Any]:
        return {
            "id": str(self.device.id),
            "name": self.device.name,
            "kind": self.device.kind,
            "kwh": self.kwh,
            "kwh_negative": self.kwh_negative,
            "share_of_consumption": self.share,
        }


@dataclass(frozen=True)
class Totals:
    consumption_kwh: float = 0.0
    solar_kwh: float = 0.0
    import_kwh: float = 0.0
    export_kwh: float = 0.0
    battery_charge_kwh: float = 0.0
    battery_discharge_kwh: float = 0.0

    @classmethod
    def of(cls, figures: list[tuple[Device, float, float]]) -> Totals:
        """Sum (device, Wh positive, Wh negative) by the kinds' definitions."""
        sums = dict.fromkeys(
            ("consumption", "solar", "import", "export", "charge", "discharge"), 0.0
        )
        for device, pos, neg in figures:
            if device.kind in CONSUMING:
                sums["consumption"] += pos
            elif device.kind == "solar":
                sums["solar"] += pos
            elif device.kind == "grid":
                sums["import"] += pos
                sums["export"] += neg
            elif device.kind == "battery":
                sums["charge"] += pos
                sums["discharge"] += neg
        return cls(
            consumption_kwh=sums["consumption"] / 1000,
            solar_kwh=sums["solar"] / 1000,
            import_kwh=sums["import"] / 1000,
            export_kwh=sums["export"] / 1000,
            battery_charge_kwh=sums["charge"] / 1000,
            battery_discharge_kwh=sums["discharge"] / 1000,
        )

    def public(self) -> dict[str, float]:
        return {
            "consumption_kwh": self.consumption_kwh,
            "solar_kwh": self.solar_kwh,
            "grid_import_kwh": self.import_kwh,
            "grid_export_kwh": self.export_kwh,
            "battery_charge_kwh": self.battery_charge_kwh,
            "battery_discharge_kwh": self.battery_discharge_kwh,
        }


@dataclass(frozen=True)
class Cost:
    currency: str
    import_cost: float
    fixed_charges: float
    export_credit: float
    local_days: int

    @property
    def total(self) -> float:
        return self.import_cost + self.fixed_charges

    @property
    def net(self) -> float:
        return self.total - self.export_credit

    def public(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "import_cost": self.import_cost,
            "fixed_charges": self.fixed_charges,
            "local_days": self.local_days,
            "estimated_cost": self.total,
            "export_credit": self.export_credit,
            "net_cost": self.net,
        }


@dataclass(frozen=True)
class Quality:
    offline_devices: list[str] = field(default_factory=list)
    capped_gaps: int = 0
    implausible_rejected: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "offline_devices": self.offline_devices,
            "capped_gaps": self.capped_gaps,
            "implausible_readings_rejected": self.implausible_rejected,
        }


@dataclass(frozen=True)
class EnergyReport:
    household: Household
    window: Window
    fresh_as_of: datetime | None
    totals: Totals
    devices: list[DeviceFigure]
    self_consumption_kwh: float
    self_consumption_pct: float | None
    cost: Cost
    quality: Quality

    def public(self) -> dict[str, Any]:
        return {
            "household_id": str(self.household.id),
            "window": window_public(self.window),
            "fresh_as_of": self.fresh_as_of.isoformat() if self.fresh_as_of else None,
            **self.totals.public(),
            "self_consumption_kwh": self.self_consumption_kwh,
            "self_consumption_pct": self.self_consumption_pct,
            "devices": [d.public() for d in self.devices],
            "cost": self.cost.public(),
            "tariff": self.household.tariff.model_dump(mode="json"),
            "data_quality": self.quality.public(),
        }


def window_public(window: Window) -> dict[str, str]:
    return {
        "name": window.name,
        "start": window.start.isoformat(),
        "end": window.end.isoformat(),
        "timezone": window.timezone,
    }


def _newest_sql(ids: str, start: str, end: str) -> str:
    """SQL for the newest reading a window's figures rest on (NULL if there is none): one
    backward index probe per device, however long the window. A reading up to a day before
    the start still holds at it."""
    return f"""(
        SELECT max(last.ts)
          FROM unnest({ids}) AS d(id),
               LATERAL (SELECT x.ts FROM readings x
                         WHERE x.device_id = d.id AND x.ts < {end}
                           AND x.ts >= {start} - interval '1 day'
                         ORDER BY x.ts DESC LIMIT 1) AS last)"""


async def fresh_as_of(conn: Conn, devices: list[Device], window: Window) -> datetime | None:
    """The newest reading the window's figures rest on (None if there is none)."""
    newest: datetime | None = await conn.fetchval(
        f"SELECT {_newest_sql('$1::uuid[]', '$2::timestamptz', '$3::timestamptz')}",
        [d.id for d in devices],
        window.start,
        window.end,
    )
    return newest


async def first_reading(conn: Conn, devices: list[Device]) -> datetime | None:
    """The oldest reading of any of `devices` (None if there is none): one forward index
    probe per device."""
    oldest: datetime | None = await conn.fetchval(
        """SELECT min(first.ts)
             FROM unnest($1::uuid[]) AS d(id),
                  LATERAL (SELECT x.ts FROM readings x WHERE x.device_id = d.id
                            ORDER BY x.ts LIMIT 1) AS first""",
        [d.id for d in devices],
    )
    return oldest


def _import_cost(
    household: Household, grid_buckets: list[BucketEnergy], import_kwh: float
) -> float:
    tariff = household.tariff
    if not tariff.time_of_use:
        return import_kwh * tariff.import_price_per_kwh
    # Time-of-use periods start and end on local quarter hours, and buckets are local
    # quarter hours too, so one price holds for a whole bucket.
    zone = ZoneInfo(household.timezone)
    cost = 0.0
    for b in grid_buckets:
        local = b.bucket.astimezone(zone)
        price = tariff.import_price_at(WEEKDAYS[local.weekday()], local.time())
        cost += b.wh_pos / 1000 * price
    return cost


async def daily_import_costs(
    conn: Conn,
    household: Household,
    days: list[Window],
    *,
    now: datetime,
    cap: timedelta,
) -> list[float]:
    """The import cost of each of `days` (whole local days, in order, one after another):
    the house's grid import priced by the quarter hour, read in one query."""
    grids = [d.id for d in await list_devices(conn, household.id) if d.kind == "grid"]
    if not days or not grids:
        return [0.0 for _ in days]
    series = await bucket_energy(
        conn, grids, start=days[0].start, end=days[-1].end, now=now, cap=cap
    )
    starts = [d.start for d in days]
    by_day: list[list[BucketEnergy]] = [[] for _ in days]
    for g in grids:
        for b in series[g]:
            # A quarter hour lies in one local day: days start on local quarter hours.
            by_day[max(0, bisect.bisect_right(starts, b.bucket) - 1)].append(b)
    return [
        _import_cost(household, buckets, sum(b.wh_pos for b in buckets) / 1000)
        for buckets in by_day
    ]


async def device_runs(
    conn: Conn, device: Device, window: Window, *, now: datetime, cap: timedelta
) -> list[float]:
    """The energy (kWh) of each run of the device in the window (telemetry.advice.runs)."""
    series = await bucket_energy(
        conn, [device.id], start=window.start, end=window.end, now=now, cap=cap
    )
    return runs(series[device.id])


@dataclass(frozen=True)
class DeviceCost:
    """One device's energy in a window priced at the household's import price of each
    quarter hour it was used in: what that energy would cost from the grid. Fixed charges
    and the part solar or the battery covered are not in it (they belong to the house)."""

    kwh: float
    cost: float


async def device_cost(
    conn: Conn,
    household: Household,
    device: Device,
    window: Window,
    *,
    now: datetime,
    cap: timedelta,
) -> DeviceCost:
    start, end = window.start, window.end
    buckets: list[BucketEnergy] = []
    if household.tariff.time_of_use:  # priced by the quarter hour, as the house's import
        series = await bucket_energy(conn, [device.id], start=start, end=end, now=now, cap=cap)
        buckets = series.get(device.id, [])
        kwh = sum(b.wh_pos for b in buckets) / 1000
    else:
        energy = await device_energy(conn, [device.id], start=start, end=end, now=now, cap=cap)
        kwh = energy[device.id].wh_pos / 1000 if device.id in energy else 0.0
    return DeviceCost(kwh, _import_cost(household, buckets, kwh))


@dataclass(frozen=True)
class _Measured:
    """What the database says about one window; EnergyReport is assembled from it."""

    energy: dict[UUID, DeviceEnergy]
    grid_buckets: list[BucketEnergy]


async def _measure(
    conn: Conn,
    household: Household,
    devices: list[Device],
    window: Window,
    *,
    now: datetime,
    cap: timedelta,
) -> _Measured:
    ids = [d.id for d in devices]
    energy = await device_energy(conn, ids, start=window.start, end=window.end, now=now, cap=cap)
    grids = [d.id for d in devices if d.kind == "grid"]
    grid_buckets: list[BucketEnergy] = []
    if household.tariff.time_of_use and grids:
        series = await bucket_energy(
            conn, grids, start=window.start, end=window.end, now=now, cap=cap
        )
        grid_buckets = [b for g in grids for b in series[g]]
    return _Measured(energy, grid_buckets)


def _assemble(
    household: Household,
    devices: list[Device],
    window: Window,
    measured: _Measured,
    *,
    fresh: datetime | None,
    latest: dict[UUID, datetime],
    implausible: int,
    now: datetime,
    cap: timedelta,
) -> EnergyReport:
    zero = DeviceEnergy(0.0, 0.0, 0)
    energy = measured.energy
    figures_in = [
        (d, energy.get(d.id, zero).wh_pos, energy.get(d.id, zero).wh_neg) for d in devices
    ]
    totals = Totals.of(figures_in)
    figures = [
        DeviceFigure(
            device=d,
            kwh=pos / 1000,
            kwh_negative=neg / 1000,
            share=(
                (pos / 1000 / totals.consumption_kwh if totals.consumption_kwh else 0.0)
                if d.kind in CONSUMING
                else None
            ),
        )
        for d, pos, neg in figures_in
    ]
    figures.sort(key=lambda f: (-f.kwh, f.device.name.lower()))
    days = window.local_days()
    tariff = household.tariff
    cost = Cost(
        currency=tariff.currency,
        import_cost=_import_cost(household, measured.grid_buckets, totals.import_kwh),
        fixed_charges=tariff.daily_fixed_charge * len(days),
        export_credit=totals.export_kwh * tariff.export_price_per_kwh,
        local_days=len(days),
    )
    used = max(0.0, totals.solar_kwh - totals.export_kwh)
    offline = sorted(d.name for d in devices if d.id not in latest or latest[d.id] < now - cap)
    return EnergyReport(
        household=household,
        window=window,
        fresh_as_of=fresh,
        totals=totals,
        devices=figures,
        self_consumption_kwh=used,
        self_consumption_pct=used / totals.solar_kwh * 100 if totals.solar_kwh else None,
        cost=cost,
        quality=Quality(
            offline_devices=offline,
            capped_gaps=sum(e.capped_gaps for e in energy.values()),
            implausible_rejected=implausible,
        ),
    )


_SIDE_FACTS_SQL = f"""
SELECT w.n,
       (SELECT count(*) FROM rejected_readings r
         WHERE r.device_id = ANY($1::uuid[]) AND r.code = 'implausible_watts'
           AND r.ts >= w.a AND r.ts < w.b) AS implausible,
       {_newest_sql("$1::uuid[]", "w.a", "w.b")} AS fresh
  FROM unnest($2::timestamptz[], $3::timestamptz[]) WITH ORDINALITY AS w(a, b, n)
 ORDER BY w.n
"""


async def _side_facts(
    conn: Conn, devices: list[Device], wins: list[Window]
) -> tuple[list[int], list[datetime | None], dict[UUID, datetime]]:
    """Per window: implausible readings rejected and fresh_as_of (the newest reading the
    figures rest on: one backward index probe per device); and each device's latest."""
    ids = [d.id for d in devices]
    rows = await conn.fetch(_SIDE_FACTS_SQL, ids, [w.start for w in wins], [w.end for w in wins])
    latest = {
        r["device_id"]: r["ts"]
        for r in await conn.fetch(
            "SELECT device_id, ts FROM device_latest WHERE device_id = ANY($1::uuid[])", ids
        )
    }
    return [int(r["implausible"]) for r in rows], [r["fresh"] for r in rows], latest


async def energy_report(
    conn: Conn, household: Household, window: Window, *, now: datetime, cap: timedelta
) -> EnergyReport:
    devices = await list_devices(conn, household.id)
    measured = await _measure(conn, household, devices, window, now=now, cap=cap)
    implausible, fresh, latest = await _side_facts(conn, devices, [window])
    return _assemble(
        household,
        devices,
        window,
        measured,
        fresh=fresh[0],
        latest=latest,
        implausible=implausible[0],
        now=now,
        cap=cap,
    )


async def energy_reports(
    connect: Callable[[], AbstractAsyncContextManager[Conn]],
    household: Household,
    wins: list[Window],
    *,
    now: datetime,
    cap: timedelta,
) -> list[EnergyReport]:
    """energy_report for several windows at once: the devices and the side facts are read
    once, and the windows' energy concurrently, each on a connection `connect` lends."""
    async with connect() as conn:
        devices = await list_devices(conn, household.id)

    async def measure(window: Window) -> _Measured:
        async with connect() as conn:
            return await _measure(conn, household, devices, window, now=now, cap=cap)

    async def side() -> tuple[list[int], list[datetime | None], dict[UUID, datetime]]:
        async with connect() as conn:
            return await _side_facts(conn, devices, wins)

    facts = asyncio.ensure_future(side())
    measured = await asyncio.gather(*(measure(w) for w in wins))
    implausible, fresh, latest = await facts
    return [
        _assemble(
            household,
            devices,
            w,
            m,
            fresh=fresh[n],
            latest=latest,
            implausible=implausible[n],
            now=now,
            cap=cap,
        )
        for n, (w, m) in enumerate(zip(wins, measured, strict=True))
    ]


async def energy_series(
    conn: Conn,
    household: Household,
    window: Window,
    edges: list[datetime],
    *,
    now: datetime,
    cap: timedelta,
    only: list[Device] | None = None,
) -> list[dict[str, Any]]:
    """Totals per bucket [edges[i], edges[i+1]); edges lie on local quarter hours (or are
    the window's own start and end). `only`: these devices of the household, not all."""
    devices = only if only is not None else await list_devices(conn, household.id)
    assert all(d.household_id == household.id for d in devices)
    by_id = {d.id: d for d in devices}
    series = await bucket_energy(
        conn, list(by_id), start=window.start, end=window.end, now=now, cap=cap
    )
    slots: list[list[tuple[Device, float, float]]] = [[] for _ in edges[:-1]]
    for device_id, buckets in series.items():
        for b in buckets:
            # A bucket cut by the window's start is keyed before it; it belongs to slot 0.
            slot = max(0, bisect.bisect_right(edges, b.bucket) - 1)
            slots[min(slot, len(slots) - 1)].append((by_id[device_id], b.wh_pos, b.wh_neg))
    return [
        {"start": edges[i].isoformat(), "end": edges[i + 1].isoformat(), **Totals.of(s).public()}
        for i, s in enumerate(slots)
    ]
