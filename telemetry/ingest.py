"""Telemetry ingestion: check each reading, store the good ones in one transaction, report
the rest by index and code.

One statement stores a batch: it inserts the readings (a repeated (device, ts) is left as it
was: raw telemetry is append-only), moves the hot table forward, and marks the rollup
ranges the new readings touch as dirty. A second one classifies what was already there as
an exact duplicate or a conflict. Both run in one transaction: all or nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from telemetry.kinds import DeviceKind

if TYPE_CHECKING:
    from collections.abc import Sequence

    from telemetry.db import Conn

MAX_READINGS = 50_000
MAX_BODY_BYTES = 8 * 1024 * 1024
FUTURE_TOLERANCE = timedelta(minutes=5)
BUCKET = timedelta(minutes=15)

# Kinds whose power is never negative; grid and battery go both ways.
NON_NEGATIVE_KINDS: frozenset[DeviceKind] = frozenset({"consumer", "solar", "ev_charger"})

_WRITABLE_SQL = """
SELECT d.id, d.kind, d.max_watts
  FROM devices d
 WHERE d.id = ANY($1::uuid[])
   AND ($3::text = 'admin'
        OR EXISTS (SELECT 1 FROM household_members m
                    WHERE m.household_id = d.household_id AND m.user_id = $2
                      AND (($3::text = 'resident' AND m.role IN ('owner', 'member'))
                        OR ($3::text = 'gateway' AND m.role = 'gateway'))))
"""

# Dirty ranges are grouped by hour of the readings, so a batch holding one reading from last
# week and the rest from now does not make the whole week dirty.
_STORE_SQL = """
WITH batch AS (
    SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::float8[], $4::int4[])
        AS b(device_id, ts, watts, idx)
), ins AS (
    INSERT INTO readings (device_id, ts, watts)
    SELECT device_id, ts, watts FROM batch
    ON CONFLICT (device_id, ts) DO NOTHING
    RETURNING device_id, ts, watts
), latest AS (
    INSERT INTO device_latest (device_id, ts, watts)
    SELECT DISTINCT ON (device_id) device_id, ts, watts FROM ins ORDER BY device_id, ts DESC
    ON CONFLICT (device_id) DO UPDATE
       SET ts = EXCLUDED.ts, watts = EXCLUDED.watts, updated_at = now()
     WHERE device_latest.ts < EXCLUDED.ts
), dirty AS (
    INSERT INTO rollup_dirty (device_id, from_ts, to_ts)
    SELECT device_id,
           date_bin('15 minutes', min(ts) - $5::interval, timestamptz '2000-01-01 00:00Z'),
           max(ts) + $5::interval
      FROM ins
     GROUP BY device_id, date_bin('1 hour', ts, timestamptz '2000-01-01 00:00Z')
)
SELECT b.idx, b.watts, r.watts AS stored
  FROM batch b
  LEFT JOIN readings r ON r.device_id = b.device_id AND r.ts = b.ts
 WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.device_id = b.device_id AND ins.ts = b.ts)
"""

# The statement above sees the table as it was before its own insert, so a conflict with a
# row committed concurrently shows no stored value there; this asks again, after it.
_STORED_SQL = """
SELECT b.idx, r.watts
  FROM unnest($1::uuid[], $2::timestamptz[], $3::int4[]) AS b(device_id, ts, idx)
  JOIN readings r ON r.device_id = b.device_id AND r.ts = b.ts
"""

_REJECTED_SQL = """
INSERT INTO rejected_readings (device_id, ts, watts, code)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::float8[], $4::text[])
"""


@dataclass(frozen=True)
class DeviceRule:
    kind: DeviceKind
    max_watts: float


@dataclass(frozen=True)
class Rejection:
    index: int
    code: str
    message: str

    def public(self) -> dict[str, Any]:
        return {"index": self.index, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    rejected: tuple[Rejection, ...]

    def public(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [r.public() for r in self.rejected],
        }


@dataclass(frozen=True)
class Policy:
    now: datetime
    cap: timedelta
    retention: timedelta


@dataclass(frozen=True)
class _Good:
    index: int
    device_id: UUID
    ts: datetime
    watts: float


@dataclass(frozen=True)
class _Attributable:
    """A refused reading that names a device the caller may write, kept for data quality."""

    device_id: UUID
    ts: datetime
    watts: float
    code: str


class _Bad(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message


def _device_id(item: dict[str, Any]) -> UUID | None:
    raw = item.get("device_id")
    try:
        return UUID(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def _timestamp(raw: object) -> datetime:
    if not isinstance(raw, str):
        raise _Bad("invalid_timestamp", "ts must be an ISO 8601 string with an offset or Z")
    try:
        ts = datetime.fromisoformat(raw)
    except ValueError:
        raise _Bad("invalid_timestamp", f"ts {raw[:40]!r} is not ISO 8601") from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise _Bad("invalid_timestamp", "ts has no UTC offset; add Z or +HH:MM")
    return ts


def _watts(raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _Bad("invalid_watts", "watts must be a number")
    watts = float(raw)
    if not math.isfinite(watts):
        raise _Bad("invalid_watts", "watts must be finite (not NaN or Infinity)")
    return watts


def check(
    items: Sequence[object], devices: dict[UUID, DeviceRule], policy: Policy
) -> tuple[list[_Good], list[Rejection], list[_Attributable]]:
    """Validate every reading on its own; one bad reading never blocks the others."""
    good: list[_Good] = []
    rejected: list[Rejection] = []
    kept: list[_Attributable] = []
    latest_allowed = policy.now + FUTURE_TOLERANCE
    oldest_allowed = policy.now - policy.retention
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise _Bad("invalid_reading", "a reading must be an object")
            device_id = _device_id(item)
            rule = devices.get(device_id) if device_id is not None else None
            if device_id is None or rule is None:
                raise _Bad("unknown_device", "no device with this id that you may write")
            ts = _timestamp(item.get("ts"))
            watts = _watts(item.get("watts"))
            if rule.kind in NON_NEGATIVE_KINDS and watts < 0:
                kept.append(_Attributable(device_id, ts, watts, "invalid_sign"))
                raise _Bad("invalid_sign", f"a {rule.kind} device never reports negative watts")
            if abs(watts) > rule.max_watts:
                kept.append(_Attributable(device_id, ts, watts, "implausible_watts"))
                raise _Bad(
                    "implausible_watts",
                    f"{watts:g} W is beyond this device's plausible maximum of "
                    f"{rule.max_watts:g} W",
                )
            if ts > latest_allowed:
                raise _Bad("future_timestamp", "ts is more than 5 minutes in the future")
            if ts < oldest_allowed:
                raise _Bad(
                    "too_old",
                    f"ts is older than the raw retention of {policy.retention.days} days",
                )
        except _Bad as bad:
            rejected.append(Rejection(index, bad.code, bad.message))
            continue
        good.append(_Good(index, device_id, ts, watts))
    return good, rejected, kept


def device_ids(items: Sequence[object]) -> list[UUID]:
    ids = {_device_id(item) for item in items if isinstance(item, dict)}
    return [i for i in ids if i is not None]


async def writable_devices(
    conn: Conn, *, user_id: UUID, role: str, ids: list[UUID]
) -> dict[UUID, DeviceRule]:
    rows = await conn.fetch(_WRITABLE_SQL, ids, user_id, role)
    return {r["id"]: DeviceRule(r["kind"], r["max_watts"]) for r in rows}


def _first_per_key(good: list[_Good]) -> tuple[list[_Good], list[_Good]]:
    """The first reading of each (device, ts) in the batch, and the repeats after it."""
    first: dict[tuple[UUID, datetime], _Good] = {}
    repeats: list[_Good] = []
    for reading in good:
        key = (reading.device_id, reading.ts)
        if key in first:
            repeats.append(reading)
        else:
            first[key] = reading
    return list(first.values()), repeats


async def store(
    conn: Conn,
    items: Sequence[object],
    *,
    user_id: UUID,
    role: str,
    policy: Policy,
) -> IngestResult:
    devices = await writable_devices(conn, user_id=user_id, role=role, ids=device_ids(items))
    good, rejected, kept = check(items, devices, policy)
    unique, repeats = _first_per_key(good)
    async with conn.transaction():
        leftovers = await conn.fetch(
            _STORE_SQL,
            [g.device_id for g in unique],
            [g.ts for g in unique],
            [g.watts for g in unique],
            [g.index for g in unique],
            policy.cap,
        )
        by_index = {g.index: g for g in unique}
        # The value that stands for each key: what was stored before, else the batch's first.
        standing = {(g.device_id, g.ts): g.watts for g in unique}
        stored = {r["idx"]: r["stored"] for r in leftovers if r["stored"] is not None}
        unseen = [by_index[r["idx"]] for r in leftovers if r["stored"] is None]
        if unseen:
            rows = await conn.fetch(
                _STORED_SQL,
                [g.device_id for g in unseen],
                [g.ts for g in unseen],
                [g.index for g in unseen],
            )
            stored |= {r["idx"]: r["watts"] for r in rows}
        for index, watts in stored.items():
            standing[(by_index[index].device_id, by_index[index].ts)] = watts
        conflicts = [by_index[i] for i in stored] + repeats
        duplicates = 0
        for reading in conflicts:
            stored_watts = standing[(reading.device_id, reading.ts)]
            if reading.watts == stored_watts:
                duplicates += 1
                continue
            rejected.append(
                Rejection(
                    reading.index,
                    "conflicting_duplicate",
                    f"a reading for this device at this instant exists with {stored_watts:g} W;"
                    " the first value stands",
                )
            )
            kept.append(
                _Attributable(reading.device_id, reading.ts, reading.watts, "conflicting_duplicate")
            )
        if kept:
            await conn.execute(
                _REJECTED_SQL,
                [k.device_id for k in kept],
                [k.ts for k in kept],
                [k.watts for k in kept],
                [k.code for k in kept],
            )
    accepted = len(unique) - len(leftovers)
    rejected.sort(key=lambda r: r.index)
    return IngestResult(accepted=accepted, duplicates=duplicates, rejected=tuple(rejected))
