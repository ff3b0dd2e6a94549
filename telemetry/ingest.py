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
import bisect
import itertools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from telemetry.access import relation_sql
from telemetry.energy import floor_bucket, floor_to
from telemetry.kinds import DeviceKind

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence

    from telemetry.db import Conn

MAX_READINGS = 50_000
MAX_BODY_BYTES = 8 * 1024 * 1024
FUTURE_TOLERANCE = timedelta(minutes=5)

# Kinds whose power is never negative; grid and battery go both ways.
NON_NEGATIVE_KINDS: frozenset[DeviceKind] = frozenset({"consumer", "solar", "ev_charger"})
_COLUMNS = ["device_id", "ts", "watts"]
_CHUNK = 10_000
_HOUR = timedelta(hours=1)

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

# Each device's newest stored reading, one backward index probe per device, read after the
# insert: the hot table moves forward to it and never back (a concurrent batch with newer
# readings may commit first). Bounded below by the batch's earliest reading, so a probe
# never walks into old chunks.
_LATEST_SQL = """
WITH moved AS (
    INSERT INTO device_latest (device_id, ts, watts)
    SELECT d.id, n.ts, n.watts
      FROM unnest($1::uuid[]) AS d(id)
     CROSS JOIN LATERAL (
           SELECT r.ts, r.watts FROM readings r
            WHERE r.device_id = d.id AND r.ts >= $2
            ORDER BY r.ts DESC LIMIT 1
           ) n
    ON CONFLICT (device_id) DO UPDATE
       SET ts = EXCLUDED.ts, watts = EXCLUDED.watts, updated_at = now()
     WHERE device_latest.ts < EXCLUDED.ts
    RETURNING device_id, ts, watts
)
SELECT d.household_id, m.device_id, m.ts, m.watts
  FROM moved m JOIN devices d ON d.id = m.device_id
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

    @property
    def lowest(self) -> float:
        """The lowest plausible watts: 0 for kinds that only draw or only produce."""
        return 0.0 if self.kind in NON_NEGATIVE_KINDS else -self.max_watts


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
    # Devices whose latest reading this batch moved forward, for the live streams.
    latest: tuple[Latest, ...] = ()

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


Record = tuple[UUID, datetime, float]


@dataclass(frozen=True)
class Latest:
    household_id: UUID
    device_id: UUID
    ts: datetime
    watts: float


@dataclass
class _Checked:
    """The readings of a chunk that passed every check, as COPY takes them, with their
    indexes in the batch and, per device slot, their timestamps."""

    records: list[Record]
    indexes: list[int]
    stamps: list[list[datetime]]


@dataclass(frozen=True)
class _Attributable:
    """A refused reading that names a device the caller may write, kept for data quality."""

    device_id: UUID
    ts: datetime
    watts: float
    code: str


@dataclass(frozen=True)
class Unreadable:
    """An NDJSON line that is not a reading's JSON (service.requests.document refused it):
    rejected at its index with this code and message, like any other bad reading."""

    code: str
    message: str


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
    """The devices a batch names that the caller may write, keyed by the id as sent, each
    with its number (slot) among them."""

    # id as sent -> (id, slot, lowest watts, highest watts, rule)
    by_text: dict[str, tuple[UUID, int, float, float, DeviceRule]]
    slots: int


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
) -> tuple[_Checked, list[Rejection], list[_Attributable]]:
    """Validate every reading on its own; one bad reading never blocks the others.

    A reading that passes every check takes the short path; any other is judged again by
    _classify, which says which check it failed.
    """
    records: list[Record] = []
    indexes: list[int] = []
    stamps: list[list[datetime]] = [[] for _ in range(devices.slots)]
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
            watts = item.get("watts")
            # type(), not isinstance(): True and False are ints to isinstance.
            if (
                found is not None
                and type(raw_ts) is str
                and (type(watts) is float or type(watts) is int)
            ):
                try:
                    ts: datetime | None = parse(raw_ts)
                except ValueError:
                    ts = None
                device_id, slot, lowest, highest, _ = found
                # A comparison with NaN is false, and the infinities are beyond any maximum.
                if (
                    ts is not None
                    and ts.tzinfo is not None
                    and oldest_allowed <= ts <= latest_allowed
                    and lowest <= watts <= highest
                ):
                    records.append((device_id, ts, watts if type(watts) is float else float(watts)))
                    indexes.append(index)
                    stamps[slot].append(ts)
                    continue
        bad = _classify(item, devices, policy)
        rejected.append(Rejection(index, bad.code, bad.message))
        if bad.kept is not None:
            kept.append(bad.kept)
    return _Checked(records, indexes, stamps), rejected, kept


def _classify(item: object, devices: Writable, policy: Policy) -> _Bad:
    """Why a reading was refused: the first check it fails, in a fixed order."""
    try:
        if isinstance(item, Unreadable):
            raise _Bad(item.code, item.message)
        if not isinstance(item, dict):
            raise _Bad("invalid_reading", "a reading must be a JSON object")
        raw_id = item.get("device_id")
        found = devices.by_text.get(raw_id) if isinstance(raw_id, str) else None
        if found is None:
            raise _Bad("unknown_device", "no device with this id that you may write")
        device_id, _, _, _, rule = found
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
    # Keyed by the ids as the database returned them: asyncpg's own UUID type, which COPY
    # encodes in C, where the standard library's costs a Python call per reading.
    rules = [(r["id"], DeviceRule(r["kind"], r["max_watts"])) for r in rows]
    found = {
        device: (device, slot, rule.lowest, rule.max_watts, rule)
        for slot, (device, rule) in enumerate(rules)
    }
    return Writable(
        {text: found[device] for text, device in named.items() if device in found},
        len(found),
    )


def _stamps_by_device(devices: Writable, checked: list[_Checked]) -> dict[UUID, list[datetime]]:
    """The sorted timestamps of the good readings of each device that has any."""
    ids = {slot: device for device, slot, *_ in devices.by_text.values()}
    out: dict[UUID, list[datetime]] = {}
    for slot in range(devices.slots):
        stamps = list(itertools.chain.from_iterable(c.stamps[slot] for c in checked))
        if stamps:
            stamps.sort()
            out[ids[slot]] = stamps
    return out


def _dirty_ranges(
    stamps: dict[UUID, list[datetime]], cap: timedelta
) -> tuple[list[UUID], list[datetime], list[datetime]]:
    """Per device, the ranges [first - cap, last + cap) whose buckets the stored readings
    change. Found hour by hour (by bisection in the sorted timestamps), so one old reading in
    a batch of new ones does not make everything between them dirty; the ranges of
    neighbouring hours that overlap are one."""
    spans: list[tuple[UUID, datetime, datetime]] = []
    for device, ordered in stamps.items():
        i = 0
        while i < len(ordered):
            j = bisect.bisect_left(ordered, floor_to(ordered[i], _HOUR) + _HOUR, i)
            first, last = ordered[i], ordered[j - 1]
            if spans and spans[-1][0] == device and first - spans[-1][2] <= 2 * cap:
                spans[-1] = (device, spans[-1][1], last)
            else:
                spans.append((device, first, last))
            i = j
    return dirty_spans(spans, cap)


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


async def _check_and_copy(
    conn: Conn, items: Sequence[object], devices: Writable, policy: Policy
) -> tuple[list[_Checked], list[Rejection], list[_Attributable], bool]:
    """Validate the batch chunk by chunk and COPY the good readings, in one streamed COPY.

    The next chunk is validated in a worker thread while the previous one streams in, so
    PostgreSQL inserts on one core while Python checks on the other. The COPY has its own
    savepoint: if a key already exists, it is undone and the last value says so.
    """
    chunks = [(i, items[i : i + _CHUNK]) for i in range(0, len(items), _CHUNK)]

    checks = [asyncio.to_thread(check, chunk, devices, policy, offset) for offset, chunk in chunks]
    ahead = [asyncio.ensure_future(checks[0])] if checks else []
    results: list[tuple[_Checked, list[Rejection], list[_Attributable]]] = []
    copied = True

    async def good_records() -> AsyncGenerator[Record]:
        for n in range(len(checks)):
            if n + 1 < len(checks):
                ahead.append(asyncio.ensure_future(checks[n + 1]))
            results.append(await ahead[n])
            for record in results[-1][0].records:
                yield record

    stream = good_records()
    try:
        async with conn.transaction():
            await conn.copy_records_to_table("readings", records=stream, columns=_COLUMNS)
    except asyncpg.UniqueViolationError:
        copied = False
    finally:
        await stream.aclose()
        # Whatever happened, every chunk is judged, and no thread is left running.
        for future in ahead[len(results) :]:
            results.append(await future)
        for coroutine in checks[len(ahead) :]:
            results.append(await coroutine)
    checked = [r[0] for r in results]
    rejected = [x for r in results for x in r[1]]
    kept = [x for r in results for x in r[2]]
    return checked, rejected, kept, copied


def _columns(records: list[Record]) -> tuple[list[UUID], list[datetime], list[float]]:
    return [r[0] for r in records], [r[1] for r in records], [r[2] for r in records]


async def _insert_missing(conn: Conn, records: list[Record]) -> int:
    """INSERT ... ON CONFLICT DO NOTHING, in batch order; returns how many were new."""
    status = await conn.execute(_INSERT_SQL, *_columns(records))
    return int(status.split()[-1])


async def record_stored(
    conn: Conn,
    devices: list[UUID],
    since: datetime,
    dirty: tuple[list[UUID], list[datetime], list[datetime]],
) -> list[Latest]:
    """What follows storing new readings of `devices`, none older than `since`, in the same
    transaction: the hot table moves forward to each device's newest reading (never back),
    the rollup ranges they touch are marked dirty, and their households' data version
    changes, so no cached answer outlives them. Returns the latest readings that moved."""
    moved = await conn.fetch(_LATEST_SQL, devices, since)
    await conn.execute(_DIRTY_SQL, *dirty)
    await conn.execute(_VERSION_SQL, devices)
    return [Latest(r["household_id"], r["device_id"], r["ts"], r["watts"]) for r in moved]


_LOAD_BATCH = 50_000


async def load_history(
    conn: Conn, rows: Iterable[tuple[UUID, datetime, float]], *, cap: timedelta
) -> int:
    """Bulk-load trusted (device_id, ts, watts) rows, such as a simulated history, without
    the checks of store(): COPY in batches, then what store() does after storing
    (record_stored) for just the devices and spans loaded. Returns the rows loaded."""
    first: dict[UUID, datetime] = {}
    last: dict[UUID, datetime] = {}

    def tracked() -> Iterator[tuple[UUID, datetime, float]]:
        for device_id, ts, watts in rows:
            if device_id not in first or ts < first[device_id]:
                first[device_id] = ts
            if device_id not in last or ts > last[device_id]:
                last[device_id] = ts
            yield device_id, ts, watts

    stream = tracked()
    count = 0
    while batch := list(itertools.islice(stream, _LOAD_BATCH)):
        await conn.copy_records_to_table(
            "readings", records=batch, columns=["device_id", "ts", "watts"]
        )
        count += len(batch)
    if count:
        devices = list(last)
        spans = [(d, first[d], last[d]) for d in devices]
        await record_stored(conn, devices, min(first.values()), dirty_spans(spans, cap))
    return count


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
        checked, rejected, kept, copied = await _check_and_copy(conn, items, devices, policy)
        good = sum(len(c.records) for c in checked)
        if copied:
            inserted = good
        else:
            inserted = await _insert_missing(conn, [r for c in checked for r in c.records])
        conflicts: list[tuple[int, Record, float]] = []
        if inserted < good:
            records = [r for c in checked for r in c.records]
            indexes = [i for c in checked for i in c.indexes]
            rows = await conn.fetch(_CONFLICTS_SQL, *_columns(records), indexes)
            by_index = dict(zip(indexes, records, strict=True))
            conflicts = [(r["idx"], by_index[r["idx"]], r["watts"]) for r in rows]
        latest: list[Latest] = []
        if inserted:
            stamps = _stamps_by_device(devices, checked)
            since = min(ts[0] for ts in stamps.values())
            latest = await record_stored(
                conn, list(stamps), since, _dirty_ranges(stamps, policy.cap)
            )
        duplicates = good - inserted - len(conflicts)
        for index, (device_id, ts, watts), stored_watts in conflicts:
            rejected.append(
                Rejection(
                    index,
                    "conflicting_duplicate",
                    f"a reading for this device at this instant exists with {stored_watts:g} W;"
                    " the first value stands",
                )
            )
            kept.append(_Attributable(device_id, ts, watts, "conflicting_duplicate"))
        if kept:
            await conn.execute(
                _REJECTED_SQL,
                [k.device_id for k in kept],
                [k.ts for k in kept],
                [k.watts for k in kept],
                [k.code for k in kept],
            )
    rejected.sort(key=lambda r: r.index)
    return IngestResult(
        accepted=inserted, duplicates=duplicates, rejected=tuple(rejected), latest=tuple(latest)
    )
