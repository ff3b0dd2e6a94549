"""Households and their devices: the rows, and the SQL that creates and reads them.

Nothing here checks who is asking; callers resolve visibility through telemetry.access
first and pass only household ids the caller may see. Every new device's name passes the
rule of telemetry.names here, whoever creates it (the API, the CLI, the seeds).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from telemetry import names
from telemetry.kinds import DeviceKind
from telemetry.names import InvalidName as InvalidDeviceName
from telemetry.tariff import Tariff

if TYPE_CHECKING:
    from telemetry.db import Conn


__all__ = ["InvalidDeviceName"]  # re-exported: callers catch it from here


class DuplicateDeviceName(Exception):
    pass


class ConfusableDeviceName(DuplicateDeviceName):
    """The name reads like another device's of the household (`existing`)."""

    def __init__(self, name: str, existing: str) -> None:
        super().__init__(name)
        self.existing = existing


@lru_cache(maxsize=4096)
def _tariff(text: str) -> Tariff:
    # Tariff is frozen, so households with the same tariff may share one.
    return Tariff.model_validate_json(text)


@dataclass(frozen=True)
class Household:
    id: UUID
    name: str
    timezone: str
    currency: str
    tariff: Tariff
    created_at: datetime
    data_version: int = 0  # bumped by every ingest that stores readings of the household

    @classmethod
    def from_record(cls, row: asyncpg.Record) -> Household:
        return cls(
            id=row["id"],
            name=row["name"],
            timezone=row["timezone"],
            currency=row["currency"],
            tariff=_tariff(row["tariff"]),
            created_at=row["created_at"],
            data_version=row["data_version"],
        )

    def public(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "timezone": self.timezone,
            "tariff": self.tariff.model_dump(mode="json"),
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Device:
    id: UUID
    household_id: UUID
    name: str
    kind: DeviceKind
    controllable: bool
    max_watts: float
    created_at: datetime

    @classmethod
    def from_record(cls, row: asyncpg.Record) -> Device:
        return cls(
            id=row["id"],
            household_id=row["household_id"],
            name=row["name"],
            kind=row["kind"],
            controllable=row["controllable"],
            max_watts=row["max_watts"],
            created_at=row["created_at"],
        )

    def public(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "household_id": str(self.household_id),
            "name": self.name,
            "kind": self.kind,
            "controllable": self.controllable,
            "max_watts": self.max_watts,
            "created_at": self.created_at.isoformat(),
        }


# The tariff as its JSON text: parsed once per distinct text, not on every request.
HOUSEHOLD_COLUMNS = (
    "h.id, h.name, h.timezone, h.currency, h.tariff::text AS tariff, h.created_at, h.data_version"
)
_DEVICE_COLUMNS = "id, household_id, name, kind, controllable, max_watts, created_at"
_LOCK_NAMES_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('device names ' || $1, 0))"
_NAMES_SQL = "SELECT name FROM devices WHERE household_id = $1"


async def create_household(conn: Conn, *, name: str, timezone: str, tariff: Tariff) -> Household:
    row = await conn.fetchrow(
        f"""
        INSERT INTO households AS h (name, timezone, currency, tariff)
        VALUES ($1, $2, $3, $4)
        RETURNING {HOUSEHOLD_COLUMNS}
        """,
        name,
        timezone,
        tariff.currency,
        tariff.model_dump(mode="json"),
    )
    assert row is not None
    return Household.from_record(row)


async def get_household(conn: Conn, household_id: UUID) -> Household | None:
    """Unscoped: for administration paths that have already established the caller's right."""
    row = await conn.fetchrow(
        f"SELECT {HOUSEHOLD_COLUMNS} FROM households h WHERE h.id = $1", household_id
    )
    return Household.from_record(row) if row else None


async def create_device(
    conn: Conn,
    *,
    household_id: UUID,
    name: str,
    kind: DeviceKind,
    controllable: bool,
    max_watts: float,
) -> Device:
    """The new device, its name normalised by telemetry.names. Raises InvalidDeviceName,
    DuplicateDeviceName (the same name, ignoring case) or ConfusableDeviceName."""
    name = names.device_name(name)
    async with conn.transaction():
        # One creation per household at a time, so two look-alikes cannot both pass the
        # check below; a lock of its own, not the household row's, which ingest updates.
        await conn.execute(_LOCK_NAMES_SQL, str(household_id))
        mine = names.skeleton(name)
        for existing in await conn.fetch(_NAMES_SQL, household_id):
            other = existing["name"]
            if other.casefold() == name.casefold():
                raise DuplicateDeviceName(name)
            if names.skeleton(other) == mine:
                raise ConfusableDeviceName(name, other)
        try:
            row = await conn.fetchrow(
                f"""
                INSERT INTO devices (household_id, name, kind, controllable, max_watts)
                VALUES ($1, $2, $3, $4, $5)
                RETURNING {_DEVICE_COLUMNS}
                """,
                household_id,
                name,
                kind,
                controllable,
                max_watts,
            )
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateDeviceName(name) from exc
    assert row is not None
    return Device.from_record(row)


async def newest_readings(
    conn: Conn, household_id: UUID
) -> dict[str, tuple[UUID, datetime | None]]:
    """Each device's id and newest reading time (from the hot table), by lower-cased device
    name; the time is None for a device with no reading yet."""
    rows = await conn.fetch(
        "SELECT d.id, lower(d.name) AS name, l.ts"
        " FROM devices d LEFT JOIN device_latest l ON l.device_id = d.id"
        " WHERE d.household_id = $1",
        household_id,
    )
    return {r["name"]: (r["id"], r["ts"]) for r in rows}


async def list_devices(conn: Conn, household_id: UUID) -> list[Device]:
    rows = await conn.fetch(
        f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE household_id = $1 ORDER BY lower(name)",
        household_id,
    )
    return [Device.from_record(r) for r in rows]
