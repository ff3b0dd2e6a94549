"""Reference energy figures in plain Python, written independently of the SQL implementation.

The integration tests compute every endpoint's figures a second time with this module and
compare. It is deliberately plain: loops over sorted readings, float arithmetic, zoneinfo.
Nothing here is shared with telemetry/: a tariff is read only through the fields the API
gives it (`TariffLike`), and its prices are looked up here, again.

The contract it implements:

- A reading is instantaneous power. Its watts hold from its timestamp until the device's next
  reading, but for at most `cap`; the last reading holds until min(now, ts + cap). Nothing
  after `now` counts, and only the part of an interval inside the window [start, end) counts.
- Wh = W x seconds / 3600, kWh = Wh / 1000, all float64.
- The same (device, ts) twice: the first occurrence in input order stands.
- Grid and battery power is signed; the positive and negative parts are integrated separately
  (import/export, charge/discharge), the negative part reported as a positive number.
- Import is priced by the time-of-use period in force at the local wall-clock time in the
  household's timezone (weekday and HH:MM), else the flat import price. Around DST a period
  applies to the wall-clock times it names: in a repeated hour both occurrences are priced by
  it, a skipped hour is never priced by it (there is no instant with that wall-clock time).
- The daily fixed charge is due for every local date the window [start, end) overlaps,
  whether or not there are readings and whatever `now` is.
- Readings of devices not in the device list are ignored; listed devices without readings
  report zeros.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from statistics import NormalDist
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

__all__ = [
    "KINDS",
    "Dev",
    "Figures",
    "Raw",
    "dedupe",
    "device_wh",
    "explanation",
    "figures",
    "kind_totals",
    "projection",
    "runs",
    "series",
]

KINDS = ("consumer", "solar", "grid", "battery", "ev_charger")
CONSUMING_KINDS = ("consumer", "ev_charger")

# date.weekday() numbers Monday as 0; the tariff names days.
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class PeriodLike(Protocol):
    """A time-of-use period as the API states it: weekdays, HH:MM from (inclusive) and to
    (exclusive, 24:00 for the end of the day), local time, and its import price."""

    @property
    def days(self) -> Sequence[str]: ...
    @property
    def start(self) -> str: ...
    @property
    def end(self) -> str: ...
    @property
    def import_price_per_kwh(self) -> float: ...


class TariffLike(Protocol):
    """A household's tariff, as the API states it."""

    @property
    def import_price_per_kwh(self) -> float: ...
    @property
    def export_price_per_kwh(self) -> float: ...
    @property
    def daily_fixed_charge(self) -> float: ...
    @property
    def time_of_use(self) -> Sequence[PeriodLike]: ...


def _minute_of(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def import_price(tariff: TariffLike, local: datetime) -> float:
    """The import price at local wall-clock time `local`: the first period naming its
    weekday whose [start, end) holds its minute, else the flat price."""
    day, minute = _WEEKDAYS[local.weekday()], local.hour * 60 + local.minute
    for period in tariff.time_of_use:
        if day in period.days and _minute_of(period.start) <= minute < _minute_of(period.end):
            return period.import_price_per_kwh
    return tariff.import_price_per_kwh


_MINUTE = timedelta(minutes=1)
_QUARTER_HOUR = timedelta(minutes=15)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Dev:
    key: str
    kind: str  # consumer | solar | grid | battery | ev_charger


@dataclass(frozen=True)
class Raw:
    device: str
    ts: datetime  # aware
    watts: float


@dataclass(frozen=True)
class Figures:
    consumption_kwh: float
    solar_kwh: float
    import_kwh: float
    export_kwh: float
    battery_charge_kwh: float
    battery_discharge_kwh: float
    self_consumption_kwh: float
    self_consumption_pct: float | None
    per_device: dict[str, tuple[float, float]]  # kWh (positive part, negative part as > 0)
    share: dict[str, float]  # consumer/ev_charger key -> fraction (0..1) of consumption
    cost: float  # import energy cost + fixed_charges, major units
    export_credit: float
    net_cost: float
    fixed_charges: float
    local_days: int
    # consumer/ev_charger key -> its positive power priced at the import price of each
    # minute it was drawn (fixed charges and solar not in it), major units
    device_cost: dict[str, float] = field(default_factory=dict)


def _utc(at: datetime) -> datetime:
    """`at` in UTC. Everything is converted on the way in because Python subtracts and compares
    two datetimes sharing one tzinfo by wall clock: across a DST change in a local zone that
    would be an hour off, and the two instants of a repeated hour would compare equal."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime: {at}")
    return at.astimezone(UTC)


def dedupe(readings: Iterable[Raw]) -> dict[str, list[tuple[datetime, float]]]:
    """Per device, (ts, watts) sorted by ts; of repeated (device, ts) the first one stands."""
    first_seen: dict[str, dict[datetime, float]] = {}
    for reading in readings:
        ts = _utc(reading.ts)
        by_ts = first_seen.setdefault(reading.device, {})
        # Raw telemetry is append-only: a later, conflicting value was rejected by the server.
        if ts not in by_ts:
            by_ts[ts] = reading.watts
    return {device: sorted(by_ts.items()) for device, by_ts in first_seen.items()}


def _held_spans(
    series: list[tuple[datetime, float]],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    cap: timedelta,
) -> Iterator[tuple[datetime, datetime, float]]:
    """(from, until, watts) for each reading's holding interval clipped to the window and now.

    `series` must be sorted by ts with unique timestamps (as dedupe returns it).
    """
    start, end, now = _utc(start), _utc(end), _utc(now)
    for i, (local_ts, watts) in enumerate(series):
        ts = _utc(local_ts)
        held_until = ts + cap
        if i + 1 < len(series):
            next_ts = _utc(series[i + 1][0])
            if next_ts <= ts:
                raise ValueError("series must be sorted by ts with unique timestamps")
            held_until = min(held_until, next_ts)
        # Nothing after now counts, whether or not a next reading exists.
        held_until = min(held_until, now)
        span_from = max(ts, start)
        span_until = min(held_until, end)
        if span_from < span_until:
            yield span_from, span_until, watts


def _wh(watts: float, span_from: datetime, span_until: datetime) -> float:
    seconds = (span_until - span_from).total_seconds()
    return watts * seconds / 3600.0


def device_wh(
    series: list[tuple[datetime, float]],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    cap: timedelta,
) -> tuple[float, float]:
    """(Wh of the positive part, Wh of the negative part as a positive number) in [start, end)."""
    positive = 0.0
    negative = 0.0
    for span_from, span_until, watts in _held_spans(series, start=start, end=end, now=now, cap=cap):
        if watts > 0:
            positive += _wh(watts, span_from, span_until)
        elif watts < 0:
            negative += _wh(-watts, span_from, span_until)
    return positive, negative


def kind_totals(devices: list[Dev], per_device: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Sum per-device (positive, negative) energy into the household totals, in the same unit.

    Consumption and solar are the signed energy (positive minus negative part); for valid
    data (the kinds are >= 0) that is just the positive part.
    """
    totals = {
        "consumption": 0.0,
        "solar": 0.0,
        "import": 0.0,
        "export": 0.0,
        "battery_charge": 0.0,
        "battery_discharge": 0.0,
    }
    for dev in devices:
        positive, negative = per_device.get(dev.key, (0.0, 0.0))
        if dev.kind in CONSUMING_KINDS:
            totals["consumption"] += positive - negative
        elif dev.kind == "solar":
            totals["solar"] += positive - negative
        elif dev.kind == "grid":
            totals["import"] += positive
            totals["export"] += negative
        elif dev.kind == "battery":
            totals["battery_charge"] += positive
            totals["battery_discharge"] += negative
        else:
            raise ValueError(f"unknown device kind {dev.kind!r} for {dev.key}")
    return totals


def _next_utc_minute(at: datetime) -> datetime:
    """The first whole UTC minute strictly after `at`."""
    whole_minutes = (at - _EPOCH) // _MINUTE
    return _EPOCH + (whole_minutes + 1) * _MINUTE


def _import_cost(
    series: list[tuple[datetime, float]],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    cap: timedelta,
    tariff: TariffLike,
    zone: ZoneInfo,
) -> float:
    """Money for the positive part of one device's power (a grid meter's: the import), priced
    minute by minute.

    The price depends only on the local weekday, hour and minute. Every UTC offset in use is
    a whole number of minutes (checked below), so the local minute (and with it the price)
    is constant within each UTC minute: cutting every interval at UTC minute boundaries
    splits it at every period boundary, local midnight and DST change, without having to
    find those instants.
    """
    cost = 0.0
    for span_from, span_until, watts in _held_spans(series, start=start, end=end, now=now, cap=cap):
        if watts <= 0:
            continue
        piece_from = span_from
        while piece_from < span_until:
            piece_until = min(_next_utc_minute(piece_from), span_until)
            local = piece_from.astimezone(zone)
            offset = local.utcoffset()
            if offset is None or offset % _MINUTE:
                raise ValueError(f"{zone.key} has a UTC offset that is not whole minutes")
            price = import_price(tariff, local)
            cost += _wh(watts, piece_from, piece_until) / 1000.0 * price
            piece_from = piece_until
    return cost


def _local_dates(start: datetime, end: datetime, zone: ZoneInfo) -> set[date]:
    """The local dates the window [start, end) overlaps.

    Sampled every 15 minutes of the window plus its last microsecond: every stretch of a local
    date lasts far longer than that, so none is missed, and the local date may even go back
    (a zone that falls back across midnight) without anything special here.
    """
    start, end = _utc(start), _utc(end)
    dates: set[date] = set()
    if start >= end:
        return dates
    at = start
    while at < end:
        dates.add(at.astimezone(zone).date())
        at += _QUARTER_HOUR
    dates.add((end - timedelta(microseconds=1)).astimezone(zone).date())
    return dates


def figures(
    devices: list[Dev],
    readings: Iterable[Raw],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    cap: timedelta,
    tariff: TariffLike,
    timezone: str,
) -> Figures:
    """Every figure of a household over [start, end), as of `now`."""
    zone = ZoneInfo(timezone)
    by_device = dedupe(readings)

    per_device: dict[str, tuple[float, float]] = {}
    for dev in devices:
        positive_wh, negative_wh = device_wh(
            by_device.get(dev.key, []), start=start, end=end, now=now, cap=cap
        )
        per_device[dev.key] = (positive_wh / 1000.0, negative_wh / 1000.0)

    totals = kind_totals(devices, per_device)
    consumption = totals["consumption"]
    solar = totals["solar"]
    export = totals["export"]

    share: dict[str, float] = {}
    for dev in devices:
        if dev.kind in CONSUMING_KINDS:
            positive, negative = per_device[dev.key]
            share[dev.key] = (positive - negative) / consumption if consumption != 0 else 0.0

    # Whatever solar was not exported was used in the house (directly or via the battery).
    self_consumption = max(0.0, solar - export)
    self_consumption_pct = self_consumption / solar * 100.0 if solar > 0 else None

    def priced(key: str) -> float:
        return _import_cost(
            by_device.get(key, []), start=start, end=end, now=now, cap=cap, tariff=tariff, zone=zone
        )

    energy_cost = sum(priced(dev.key) for dev in devices if dev.kind == "grid")
    device_cost = {dev.key: priced(dev.key) for dev in devices if dev.kind in CONSUMING_KINDS}
    # The fixed charge follows the window, not the data: a day is due even without readings.
    local_days = len(_local_dates(start, end, zone))
    fixed_charges = tariff.daily_fixed_charge * local_days
    cost = energy_cost + fixed_charges
    export_credit = export * tariff.export_price_per_kwh

    return Figures(
        consumption_kwh=consumption,
        solar_kwh=solar,
        import_kwh=totals["import"],
        export_kwh=export,
        battery_charge_kwh=totals["battery_charge"],
        battery_discharge_kwh=totals["battery_discharge"],
        self_consumption_kwh=self_consumption,
        self_consumption_pct=self_consumption_pct,
        per_device=per_device,
        share=share,
        cost=cost,
        export_credit=export_credit,
        net_cost=cost - export_credit,
        fixed_charges=fixed_charges,
        local_days=local_days,
        device_cost=device_cost,
    )


def series(
    devices: list[Dev],
    readings: Iterable[Raw],
    *,
    edges: list[datetime],
    now: datetime,
    cap: timedelta,
) -> list[dict[str, tuple[float, float]]]:
    """Per bucket [edges[i], edges[i+1]), per device: (positive-part Wh, negative-part Wh).

    Household totals per bucket: kind_totals(devices, bucket).
    """
    edges = [_utc(edge) for edge in edges]
    for earlier, later in itertools.pairwise(edges):
        if not earlier < later:
            raise ValueError(f"edges must increase: {earlier} then {later}")
    if len(edges) < 2:
        return []
    by_device = dedupe(readings)
    # positive[key][i], negative[key][i]: Wh of device `key` in bucket i.
    positive = {dev.key: [0.0] * (len(edges) - 1) for dev in devices}
    negative = {dev.key: [0.0] * (len(edges) - 1) for dev in devices}
    for dev in devices:
        spans = _held_spans(
            by_device.get(dev.key, []), start=edges[0], end=edges[-1], now=now, cap=cap
        )
        # Each held span is handed to the buckets it overlaps (asking device_wh once per
        # bucket would rescan every reading for every bucket: hours for a month of minutes).
        for span_from, span_until, watts in spans:
            i = bisect.bisect_right(edges, span_from) - 1  # the bucket holding span_from
            while i < len(edges) - 1 and edges[i] < span_until:
                piece_from = max(span_from, edges[i])
                piece_until = min(span_until, edges[i + 1])
                if watts > 0:
                    positive[dev.key][i] += _wh(watts, piece_from, piece_until)
                elif watts < 0:
                    negative[dev.key][i] += _wh(-watts, piece_from, piece_until)
                i += 1
    return [
        {dev.key: (positive[dev.key][i], negative[dev.key][i]) for dev in devices}
        for i in range(len(edges) - 1)
    ]


def _positive_kwh(key: str, f: Figures) -> float:
    return f.per_device[key][0]


def explanation(
    devices: list[Dev], window: Figures, baselines: list[Figures], *, flat_price: float
) -> dict[str, float]:
    """Why `window` cost what it did against the mean of `baselines`: the difference of
    their costs in parts that sum to it (keys "days", "fixed_charges", "price", "solar",
    "storage", "unmetered", and "device:KEY" for each consuming device).

    Each baseline figure is the mean over the baselines, scaled by the window's local days
    over their mean local days. The days part is the baseline's mean cost times that scale
    less one; the price part the window's import cost less its import at the baseline's
    price per kWh (its scaled import cost over its scaled import, or `flat_price` when it
    imported nothing); every energy part is a change against the scaled baseline at that
    price: a device's use; solar used at home (produced less exported) with the sign
    turned (less of it costs more); battery charge less discharge; and whatever change of
    import the others leave (consumption - own solar + charge - discharge + it = import)."""
    n = len(baselines)
    if n == 0:
        raise ValueError("no baselines")
    base_days = sum(b.local_days for b in baselines) / n
    scale = window.local_days / base_days if base_days else 1.0

    def base(figure: Callable[[Figures], float]) -> float:
        return sum(figure(b) for b in baselines) / n * scale

    def change(figure: Callable[[Figures], float]) -> float:
        return figure(window) - base(figure)

    base_import_cost = base(lambda f: f.cost - f.fixed_charges)
    base_import = base(lambda f: f.import_kwh)
    price = base_import_cost / base_import if base_import > 0 else flat_price
    parts = {
        "days": sum(b.cost for b in baselines) / n * (scale - 1),
        "fixed_charges": change(lambda f: f.fixed_charges),
        "price": (window.cost - window.fixed_charges) - price * window.import_kwh,
    }
    used: dict[str, float] = {}
    for dev in devices:
        if dev.kind in CONSUMING_KINDS:
            used[dev.key] = change(functools.partial(_positive_kwh, dev.key))
            parts[f"device:{dev.key}"] = price * used[dev.key]
    own_solar = change(lambda f: f.solar_kwh - f.export_kwh)
    battery = change(lambda f: f.battery_charge_kwh - f.battery_discharge_kwh)
    rest = change(lambda f: f.import_kwh) - sum(used.values()) + own_solar - battery
    parts["solar"] = -price * own_solar
    parts["storage"] = price * battery
    parts["unmetered"] = price * rest
    return parts


def projection(
    so_far: float,
    daily: Sequence[float],
    remaining_days: float,
    fixed_to_come: float,
    coverage: float = 0.8,
) -> tuple[float, float, float]:
    """What a running period is on course to cost, low and high: the cost so far, plus the
    mean import cost of the household's recent whole days (`daily`) for each day still to
    come (a fraction for the rest of today), plus the fixed charges of the days to come;
    the range is that -/+ the normal quantile of `coverage` times the days' sample standard
    deviation times the square root of (the days to come + their square over the days of
    history): a sum's prediction interval with an estimated mean; never below what is
    already due."""
    n = len(daily)
    mean = sum(daily) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in daily) / (n - 1))
    z = NormalDist().inv_cdf(0.5 + coverage / 2)
    expected = so_far + mean * remaining_days + fixed_to_come
    spread = z * sd * math.sqrt(remaining_days + remaining_days**2 / n)
    return expected, max(so_far + fixed_to_come, expected - spread), expected + spread


def runs(quarter_hours_wh: Sequence[float], *, run_wh: float = 25.0) -> list[float]:
    """The energy (kWh) of each run in a device's consecutive local quarter hours (Wh of
    each, in order, none left out): a run is a stretch of quarter hours of at least `run_wh`
    each."""
    out: list[float] = []
    current = 0.0
    for wh in quarter_hours_wh:
        if wh >= run_wh:
            current += wh
        elif current:
            out.append(current / 1000.0)
            current = 0.0
    if current:
        out.append(current / 1000.0)
    return out
