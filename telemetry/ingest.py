"""Telemetry ingestion: check each reading, store the good ones in one transaction, report
the rest by index and code.

A batch goes in with COPY, or with INSERT ... ON CONFLICT DO NOTHING when some of it is
already stored (a repeated (device, ts) keeps its first value: raw telemetry is
append-only); what was there is then classed as an exact duplicate or a conflict. The hot
table moves forward and the rollup ranges the readings touch are marked dirty, all in one
transaction: all or nothing.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import asyncpg

from telemetry.access import relation_sql
from telemetry.energy import floor_bucket
from telemetry.kinds import DeviceKind

if TYPE_CHECKING:
    from collections.abc import Sequence

    from telemetry.db import Conn

MAX_READINGS = 50_000
MAX_BODY_BYTES = 8 * 1024 * 1024
FUTURE_TOLERANCE = timedelta(minutes=5)

# Kinds whose power is never negative; grid and battery go both ways.
NON_NEGATIVE_KINDS: frozenset[DeviceKind] = frozenset({"consumer", "solar", "ev_charger"})
_COLUMNS = ["device_id", "ts", "watts"]
_CHUNK = 10_000

# The devices of households the caller may see, by the one visibility rule of
# telemetry.access, minus support's: support access is read-only.
_WRITABLE_SQL = f"""
SELECT d.id, d.kind, d.max_watts
  FROM devices d
  JOIN households h ON h.id = d.household_id
  {relation_sql("$2", "$3::text")}
 WHERE d.id = ANY($1::uuid[]) AND r.relation <> 'support'
"""

# In batch order, so that of two readings with one key in a batch the first one stands.
_INSERT_SQL = """
INSERT INTO readings (device_id, ts, watts)
SELECT device_id, ts, watts
  FROM unnest($1::uuid[], $2::timestamptz[], $3::float8[]) WITH ORDINALITY
       AS b(device_id, ts, watts, n)
 ORDER BY n
ON CONFLICT (device_id, ts) DO NOTHING
"""

# After the insert every key of the batch is in the table; a stored value that differs from
# the batch's is a conflict, with what was stored before or with an earlier reading of the
# same batch. Everything else not inserted is an exact duplicate.
_CONFLICTS_SQL = """
SELECT b.idx, r.watts
  FROM unnest($1::uuid[], $2::timestamptz[], $3::float8[], $4::int4[])
       AS b(device_id, ts, watts, idx)
  JOIN readings r ON r.device_id = b.device_id AND r.ts = b.ts
 WHERE r.watts <> b.watts
"""

_LATEST_SQL = """
INSERT INTO device_latest (device_id, ts, watts)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::float8[])
ON CONFLICT (device_id) DO UPDATE
   SET ts = EXCLUDED.ts, watts = EXCLUDED.watts, updated_at = now()
 WHERE device_latest.ts < EXCLUDED.ts
"""

_VERSION_SQL = """
UPDATE households SET data_version = data_version + 1
 WHERE id IN (SELECT household_id FROM devices WHERE id = ANY($1::uuid[]))
"""

_DIRTY_SQL = """
INSERT INTO rollup_dirty (device_id, from_ts, to_ts)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[])
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


@dataclass(frozen=True, slots=True)
class _Good:
    index: int
    device_id: UUID
    slot: int  # the device's number within this batch: a cheap key where UUIDs hash slowly
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
    def __init__(self, code: str, message: str, kept: _Attributable | None = None) -> None:
        self.code = code
        self.message = message
        self.kept = kept


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
    try:
        watts = float(raw)
    except OverflowError:  # a JSON integer beyond any float
        watts = math.inf
    if not math.isfinite(watts):
        raise _Bad("invalid_watts", "watts must be finite (not NaN or Infinity)")
    return watts


@dataclass(frozen=True)
class Writable:
    """The devices a batch names that the caller may write, keyed by the id as sent."""

    by_text: dict[str, tuple[UUID, int, DeviceRule]]


def named_devices(items: Sequence[object]) -> dict[str, UUID]:
    """Each distinct device id string of the batch that parses as a UUID."""
    texts = {
        text
        for item in items
        if isinstance(item, dict) and isinstance(text := item.get("device_id"), str)
    }
    parsed: dict[str, UUID] = {}
    for text in texts:
        if text:
            try:
                parsed[text] = UUID(text)
            except ValueError:
                continue
    return parsed


def check(
    items: Sequence[object], devices: Writable, policy: Policy, offset: int = 0
) -> tuple[list[_Good], list[Rejection], list[_Attributable]]:
    """Validate every reading on its own; one bad reading never blocks the others.

    A reading that passes every check takes the short path; any other is judged again by
    _classify, which says which check it failed.
    """
    good: list[_Good] = []
    rejected: list[Rejection] = []
    kept: list[_Attributable] = []
    latest_allowed = policy.now + FUTURE_TOLERANCE
    oldest_allowed = policy.now - policy.retention
    by_text = devices.by_text
    parse = datetime.fromisoformat
    for index, item in enumerate(items, offset):
        if type(item) is dict:
            raw_id = item.get("device_id")
            # Only a string can name a device; anything else (a list, an object) is unhashable.
            found = by_text.get(raw_id) if type(raw_id) is str else None
            raw_ts = item.get("ts")
            raw_watts = item.get("watts")
            # type(), not isinstance(): True and False are ints to isinstance.
            if found is not None and type(raw_ts) is str and type(raw_watts) in (float, int):
                watts = cast("float", raw_watts)
                try:
                    ts: datetime | None = parse(raw_ts)
                except ValueError:
                    ts = None
                device_id, slot, rule = found
                # abs() <= max also refuses NaN and the infinities.
                if (
                    ts is not None
                    and ts.tzinfo is not None
                    and oldest_allowed <= ts <= latest_allowed
                    and abs(watts) <= rule.max_watts
                    and (watts >= 0 or rule.kind not in NON_NEGATIVE_KINDS)
                ):
                    good.append(_Good(index, device_id, slot, ts, float(watts)))
                    continue
        bad = _classify(item, devices, policy)
        rejected.append(Rejection(index, bad.code, bad.message))
        if bad.kept is not None:
            kept.append(bad.kept)
    return good, rejected, kept


def _classify(item: object, devices: Writable, policy: Policy) -> _Bad:
    """Why a reading was refused: the first check it fails, in a fixed order."""
    try:
        if not isinstance(item, dict):
            raise _Bad("invalid_reading", "a reading must be a JSON object")
        raw_id = item.get("device_id")
        found = devices.by_text.get(raw_id) if isinstance(raw_id, str) else None
        if found is None:
            raise _Bad("unknown_device", "no device with this id that you may write")
        device_id, _, rule = found
        ts = _timestamp(item.get("ts"))
        watts = _watts(item.get("watts"))
        if rule.kind in NON_NEGATIVE_KINDS and watts < 0:
            kept = _Attributable(device_id, ts, watts, "invalid_sign")
            raise _Bad("invalid_sign", f"a {rule.kind} device never reports negative watts", kept)
        if abs(watts) > rule.max_watts:
            kept = _Attributable(device_id, ts, watts, "implausible_watts")
            raise _Bad(
                "implausible_watts",
                f"{watts:g} W is beyond this device's plausible maximum of {rule.max_watts:g} W",
                kept,
            )
        if ts > policy.now + FUTURE_TOLERANCE:
            raise _Bad("future_timestamp", "ts is more than 5 minutes in the future")
        if ts < policy.now - policy.retention:
            raise _Bad(
                "too_old", f"ts is older than the raw retention of {policy.retention.days} days"
            )
    except _Bad as bad:
        return bad
    raise AssertionError(f"reading {item!r} passes every check but took the slow path")


async def writable_devices(
    conn: Conn, *, user_id: UUID, role: str, items: Sequence[object]
) -> Writable:
    named = named_devices(items)
    rows = await conn.fetch(_WRITABLE_SQL, list(set(named.values())), user_id, role)
    rules = {r["id"]: DeviceRule(r["kind"], r["max_watts"]) for r in rows}
    slots = {device: slot for slot, device in enumerate(rules)}
    return Writable(
        {
            text: (device, slots[device], rules[device])
            for text, device in named.items()
            if device in rules
        }
    )


def _dirty_ranges(
    readings: list[_Good], cap: timedelta
) -> tuple[list[UUID], list[datetime], list[datetime]]:
    """Per device and hour of the readings, the range [first - cap, last + cap) whose
    buckets they change; grouped by hour so one old reading in a batch of new ones does not
    make everything between them dirty."""
    spans: dict[tuple[int, int], list[datetime]] = {}
    ids: dict[int, UUID] = {}
    for r in readings:
        key = (r.slot, int(r.ts.timestamp()) // 3600)
        ids[r.slot] = r.device_id
        span = spans.get(key)
        if span is None:
            spans[key] = [r.ts, r.ts]
        elif r.ts < span[0]:
            span[0] = r.ts
        elif r.ts > span[1]:
            span[1] = r.ts
    return dirty_spans(
        [(ids[slot], first, last) for (slot, _), (first, last) in spans.items()], cap
    )


def dirty_spans(
    stored: list[tuple[UUID, datetime, datetime]], cap: timedelta
) -> tuple[list[UUID], list[datetime], list[datetime]]:
    """The rollup ranges that readings of a device from `first` to `last` change: the
    interval before `first` ends differently now, and `last` holds for up to the cap."""
    return (
        [device for device, _, _ in stored],
        [floor_bucket(first - cap) for _, first, _ in stored],
        [last + cap for _, _, last in stored],
    )


def _latest(readings: list[_Good]) -> tuple[list[UUID], list[datetime], list[float]]:
    newest: dict[int, _Good] = {}
    for r in readings:
        seen = newest.get(r.slot)
        if seen is None or r.ts > seen.ts:
            newest[r.slot] = r
    latest = list(newest.values())
    return [r.device_id for r in latest], [r.ts for r in latest], [r.watts for r in latest]


async def _check_and_copy(
    conn: Conn, items: Sequence[object], devices: Writable, policy: Policy
) -> tuple[list[_Good], list[Rejection], list[_Attributable], bool]:
    """Validate the batch chunk by chunk and COPY each chunk's good readings.

    The next chunk is validated in a worker thread while the previous one is being copied,
    so PostgreSQL inserts on one core while Python checks on the other. The COPYs share one
    savepoint: if a key already exists, they are all undone and the last value says so.
    """
    chunks = [(i, items[i : i + _CHUNK]) for i in range(0, len(items), _CHUNK)]
    checks = [asyncio.to_thread(check, chunk, devices, policy, offset) for offset, chunk in chunks]
    ahead = [asyncio.ensure_future(checks[0])] if checks else []
    results: list[tuple[list[_Good], list[Rejection], list[_Attributable]]] = []
    copied = True
    try:
        async with conn.transaction():
            for n in range(len(checks)):
                if n + 1 < len(checks):
                    ahead.append(asyncio.ensure_future(checks[n + 1]))
                results.append(await ahead[n])
                good = results[-1][0]
                if good:
                    await conn.copy_records_to_table(
                        "readings",
                        records=[(g.device_id, g.ts, g.watts) for g in good],
                        columns=_COLUMNS,
                    )
    except asyncpg.UniqueViolationError:
        copied = False
    finally:
        # Whatever happened, every chunk is judged, and no thread is left running.
        for future in ahead[len(results) :]:
            results.append(await future)
        for coroutine in checks[len(ahead) :]:
            results.append(await coroutine)
    good_all = [g for r in results for g in r[0]]
    rejected = [x for r in results for x in r[1]]
    kept = [x for r in results for x in r[2]]
    return good_all, rejected, kept, copied


async def _insert_missing(conn: Conn, good: list[_Good]) -> int:
    """INSERT ... ON CONFLICT DO NOTHING, in batch order; returns how many were new."""
    status = await conn.execute(
        _INSERT_SQL,
        [g.device_id for g in good],
        [g.ts for g in good],
        [g.watts for g in good],
    )
    return int(status.split()[-1])


async def record_stored(
    conn: Conn,
    latest: tuple[list[UUID], list[datetime], list[float]],
    dirty: tuple[list[UUID], list[datetime], list[datetime]],
) -> None:
    """What follows storing new readings, in the same transaction: the hot table moves
    forward (never back), the rollup ranges they touch are marked dirty, and their
    households' data version changes, so no cached answer outlives them."""
    await conn.execute(_LATEST_SQL, *latest)
    await conn.execute(_DIRTY_SQL, *dirty)
    await conn.execute(_VERSION_SQL, latest[0])


async def store(
    conn: Conn,
    items: Sequence[object],
    *,
    user_id: UUID,
    role: str,
    policy: Policy,
) -> IngestResult:
    devices = await writable_devices(conn, user_id=user_id, role=role, items=items)
    async with conn.transaction():
        good, rejected, kept, copied = await _check_and_copy(conn, items, devices, policy)
        inserted = len(good) if copied else await _insert_missing(conn, good)
        conflicts: list[tuple[_Good, float]] = []
        if inserted < len(good):
            rows = await conn.fetch(
                _CONFLICTS_SQL,
                [g.device_id for g in good],
                [g.ts for g in good],
                [g.watts for g in good],
                [g.index for g in good],
            )
            by_index = {g.index: g for g in good}
            conflicts = [(by_index[r["idx"]], r["watts"]) for r in rows]
        if inserted:
            await record_stored(conn, _latest(good), _dirty_ranges(good, policy.cap))
        duplicates = len(good) - inserted - len(conflicts)
        for reading, stored_watts in conflicts:
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
    rejected.sort(key=lambda r: r.index)
    return IngestResult(accepted=inserted, duplicates=duplicates, rejected=tuple(rejected))
