"""Live power: each device's latest reading and the house totals they make now.

The hot table `device_latest` moves forward with every stored batch (telemetry.ingest);
the live endpoints and the live streams read it here, and the streams apply the updates
ingest publishes to the same summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from telemetry.households import Household
from telemetry.queries import CONSUMING

if TYPE_CHECKING:
    from telemetry.db import Conn


@dataclass(frozen=True)
class LiveDevice:
    """A device and its latest reading (None before the first)."""

    id: UUID
    name: str
    kind: str
    ts: datetime | None
    watts: float | None


async def devices(conn: Conn, household_id: UUID) -> list[LiveDevice]:
    rows = await conn.fetch(
        """
        SELECT d.id, d.name, d.kind, l.ts, l.watts
          FROM devices d LEFT JOIN device_latest l ON l.device_id = d.id
         WHERE d.household_id = $1 ORDER BY lower(d.name)
        """,
        household_id,
    )
    return [LiveDevice(r["id"], r["name"], r["kind"], r["ts"], r["watts"]) for r in rows]


def summary(
    household_id: UUID, devices: list[LiveDevice], *, now: datetime, cap: timedelta
) -> dict[str, Any]:
    """Each device's latest watts and age; house totals count only devices heard from
    within the gap cap."""
    load = solar = grid_import = grid_export = 0.0
    out = []
    newest: datetime | None = None
    for d in devices:
        fresh = d.ts is not None and d.ts >= now - cap
        if d.ts is not None and (newest is None or d.ts > newest):
            newest = d.ts
        out.append(
            {
                "id": str(d.id),
                "name": d.name,
                "kind": d.kind,
                "watts": d.watts,
                "as_of": d.ts.isoformat() if d.ts else None,
                "age_seconds": (now - d.ts).total_seconds() if d.ts else None,
                "stale": not fresh,
            }
        )
        if not fresh or d.watts is None:
            continue
        if d.kind in CONSUMING:
            load += d.watts
        elif d.kind == "solar":
            solar += d.watts
        elif d.kind == "grid":
            grid_import += max(d.watts, 0.0)
            grid_export += max(-d.watts, 0.0)
    return {
        "household_id": str(household_id),
        "fresh_as_of": newest.isoformat() if newest else None,
        "house_load_watts": load,
        "solar_watts": solar,
        "grid_import_watts": grid_import,
        "grid_export_watts": grid_export,
        "devices": out,
    }


async def snapshot(
    conn: Conn, household: Household, *, now: datetime, cap: timedelta
) -> dict[str, Any]:
    """GET /live: the summary() of the household's devices now."""
    return summary(household.id, await devices(conn, household.id), now=now, cap=cap)
