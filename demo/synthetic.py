"""Deterministic synthetic household telemetry, shared by demo seeding, tests and benchmarks."""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Final, Protocol
from zoneinfo import ZoneInfo

from telemetry.kinds import DeviceKind

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator


__all__ = [
    "Continuation",
    "DeviceKind",
    "DeviceSpec",
    "HouseholdSpec",
    "Reading",
    "demo_household",
    "fleet",
    "generate",
]


@dataclass(frozen=True)
class DeviceSpec:
    key: str
    name: str
    kind: DeviceKind
    controllable: bool
    max_watts: float


@dataclass(frozen=True)
class HouseholdSpec:
    key: str
    name: str
    timezone: str
    devices: tuple[DeviceSpec, ...]


# slots: benchmarks hold hundreds of thousands of these in flight.
@dataclass(frozen=True, slots=True)
class Reading:
    device_key: str
    ts: datetime
    watts: float


def demo_household() -> HouseholdSpec:
    return HouseholdSpec(
        key="demo",
        name="Demo household",
        timezone="Europe/Berlin",
        devices=(
            DeviceSpec("heat_pump", "Heat pump", "consumer", True, 3500.0),
            DeviceSpec("ev_charger", "EV charger", "ev_charger", True, 11000.0),
            DeviceSpec("fridge", "Fridge", "consumer", False, 300.0),
            DeviceSpec("dishwasher", "Dishwasher", "consumer", True, 2400.0),
            DeviceSpec("solar_inverter", "Solar inverter", "solar", False, 8000.0),
            DeviceSpec("grid_meter", "Grid meter", "grid", False, 25000.0),
            DeviceSpec("battery", "Battery", "battery", True, 5000.0),
        ),
    )


@dataclass(frozen=True)
class _Template:
    stem: str
    name: str
    kind: DeviceKind
    controllable: bool
    max_watts_choices: tuple[float, ...]
    weight: float


_FLEET_TEMPLATES: Final = (
    _Template("heat_pump", "Heat pump", "consumer", True, (2500.0, 3500.0, 5000.0), 3.0),
    _Template("ev_charger", "EV charger", "ev_charger", True, (7400.0, 11000.0), 2.0),
    _Template("fridge", "Fridge", "consumer", False, (200.0, 300.0, 400.0), 3.0),
    _Template("dishwasher", "Dishwasher", "consumer", True, (2000.0, 2400.0), 2.0),
    _Template("solar_inverter", "Solar inverter", "solar", False, (4000.0, 8000.0, 10000.0), 2.0),
    _Template("battery", "Battery", "battery", True, (3000.0, 5000.0), 1.0),
)

# Cycled, not drawn, so any fleet of five or more households covers the awkward cases:
# a 45-minute offset (Chatham), southern-hemisphere DST (Sydney) and no DST at all (UTC).
FLEET_TIMEZONES: Final = (
    "Europe/Berlin",
    "America/New_York",
    "Pacific/Chatham",
    "Australia/Sydney",
    "UTC",
    "Asia/Kolkata",
    "America/Los_Angeles",
    "Europe/London",
)

# A plausible residential main fuse; raised per household only when its devices need more.
_MIN_GRID_MAX_WATTS: Final = 25000.0


def fleet(households: int, devices_per_household: int, seed: int) -> list[HouseholdSpec]:
    if households < 0:
        raise ValueError("households must be >= 0")
    if devices_per_household < 1:
        raise ValueError("devices_per_household must be >= 1 (every household has a grid meter)")
    # S311: simulation data, not secrets.
    rng = random.Random(_stable_seed(seed, "fleet"))  # noqa: S311
    weights = [t.weight for t in _FLEET_TEMPLATES]
    result: list[HouseholdSpec] = []
    for i in range(households):
        counts: dict[str, int] = {}
        devices: list[DeviceSpec] = []
        for template in rng.choices(_FLEET_TEMPLATES, weights, k=devices_per_household - 1):
            n = counts[template.stem] = counts.get(template.stem, 0) + 1
            # Numbered copies keep keys and names unique, names also under lower().
            suffix_key, suffix_name = ("", "") if n == 1 else (f"_{n}", f" {n}")
            devices.append(
                DeviceSpec(
                    key=template.stem + suffix_key,
                    name=template.name + suffix_name,
                    kind=template.kind,
                    controllable=template.controllable,
                    max_watts=rng.choice(template.max_watts_choices),
                )
            )
        import_w, export_w = _worst_case_grid_watts(devices)
        grid_max = max(_MIN_GRID_MAX_WATTS, math.ceil(max(import_w, export_w) / 1000.0) * 1000.0)
        devices.append(DeviceSpec("grid_meter", "Grid meter", "grid", False, grid_max))
        result.append(
            HouseholdSpec(
                key=f"fleet-{i:05d}",
                name=f"Fleet household {i + 1}",
                timezone=FLEET_TIMEZONES[i % len(FLEET_TIMEZONES)],
                devices=tuple(devices),
            )
        )
    return result


def _worst_case_grid_watts(devices: Iterable[DeviceSpec]) -> tuple[float, float]:
    """Largest possible import and export through the grid meter given the other devices."""
    draw = feed = 0.0
    for d in devices:
        if d.kind in ("consumer", "ev_charger", "battery"):
            draw += d.max_watts
        if d.kind in ("solar", "battery"):
            feed += d.max_watts
    return draw, feed


def _stable_seed(*parts: object) -> int:
    # hash() is salted per process; sha256 over repr() gives the same stream on every run.
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


_SOUTHERN_PREFIXES: Final = (
    "Australia/",
    "Antarctica/",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Pacific/Fiji",
    "America/Argentina/",
    "America/Sao_Paulo",
    "America/Santiago",
    "America/Montevideo",
    "Africa/Johannesburg",
    "Africa/Maputo",
    "Africa/Windhoek",
)


def _is_southern(timezone: str) -> bool:
    return timezone.startswith(_SOUTHERN_PREFIXES)


class _Clock:
    """Local wall-clock position of the current step, shared by every device model.

    Mutable on purpose: the generator advances one instance per step instead of allocating
    a new object for each of the (steps x devices) model calls.
    """

    __slots__ = ("day", "dst_hours", "hour", "season")

    def __init__(self) -> None:
        self.day = 0  # local calendar day, as days since 1970-01-01
        self.hour = 0.0  # local wall-clock time of day, 0 <= hour < 24
        self.season = 0.0  # +1 at local midsummer, -1 at midwinter
        self.dst_hours = 0.0


class _Model(Protocol):
    def power(self, clock: _Clock) -> float: ...


def _rng(*parts: object) -> random.Random:
    # S311: simulation data, not secrets.
    return random.Random(_stable_seed(*parts))  # noqa: S311


class _Cycler:
    """Compressor-style on/off cycling; the subclass decides lengths and power levels."""

    def __init__(self, rng: random.Random, step_s: float) -> None:
        self._rng = rng
        self._step_s = step_s
        self._on = rng.random() < 0.5
        self._left_s = rng.uniform(0.0, 1200.0)
        self._level = 0.0

    def _next_phase(self, clock: _Clock, on: bool) -> tuple[float, float]:
        raise NotImplementedError

    def _advance(self, clock: _Clock) -> None:
        self._left_s -= self._step_s
        while self._left_s <= 0.0:
            self._on = not self._on
            length, self._level = self._next_phase(clock, self._on)
            self._left_s += length


class _Fridge(_Cycler):
    def __init__(self, rng: random.Random, step_s: float, max_w: float) -> None:
        super().__init__(rng, step_s)
        self._scale = max_w / 300.0
        self._max = max_w
        self._level = self._next_phase(_Clock(), self._on)[1]

    def _next_phase(self, clock: _Clock, on: bool) -> tuple[float, float]:
        if on:
            return self._rng.uniform(600.0, 1200.0), self._rng.uniform(100.0, 150.0) * self._scale
        return self._rng.uniform(1200.0, 2700.0), 0.0

    def power(self, clock: _Clock) -> float:
        self._advance(clock)
        if self._on:
            return min(self._max, self._level + self._rng.uniform(-3.0, 3.0) * self._scale)
        # Off is the controller and the light sensor, a few watts.
        return self._rng.uniform(2.0, 5.0) * self._scale


class _HeatPump(_Cycler):
    def __init__(self, rng: random.Random, step_s: float, max_w: float) -> None:
        super().__init__(rng, step_s)
        self._scale = max_w / 3500.0
        self._max = max_w
        self._level = self._next_phase(_Clock(), self._on)[1]

    def _demand(self, clock: _Clock) -> float:
        need = 0.25 + 0.375 * (1.0 - clock.season)
        hour = clock.hour
        # Cold nights and the morning warm-up dominate; solar gain makes midday the lull.
        if hour < 9.0 or hour >= 21.0:
            return need
        if hour < 16.0:
            return need * 0.55
        return need * 0.8

    def _next_phase(self, clock: _Clock, on: bool) -> tuple[float, float]:
        demand = self._demand(clock)
        duty = min(0.9, max(0.1, 0.1 + 0.75 * demand))
        on_s = self._rng.uniform(720.0, 2100.0)
        if on:
            return on_s, (1300.0 + 1900.0 * demand) * self._rng.uniform(0.95, 1.05) * self._scale
        return on_s * (1.0 - duty) / duty * self._rng.uniform(0.7, 1.3), 12.0 * self._scale

    def power(self, clock: _Clock) -> float:
        self._advance(clock)
        if self._on:
            return min(self._max, self._level * self._rng.uniform(0.98, 1.02))
        return self._level


def _day_rng(ident: tuple[object, ...], day: int) -> random.Random:
    """Random choices for one local day of one device.

    Seeded by the day itself, not by position in the run: a given day looks the same whatever
    the run's start, and its draws never depend on how many steps came before.
    """
    return _rng(*ident, "day", day)


_DISHWASHER_PHASES: Final = (
    # (end of phase as a fraction of the run, heating?)
    (0.06, False),
    (0.32, True),
    (0.62, False),
    (0.80, True),
    (1.00, False),
)


class _Dishwasher:
    def __init__(self, rng: random.Random, ident: tuple[object, ...], max_w: float) -> None:
        self._rng = rng
        self._ident = ident
        self._scale = max_w / 2400.0
        self._max = max_w
        self._day = -(10**9)
        self._run: tuple[float, float] | None = None

    def _plan(self, day: int) -> tuple[float, float] | None:
        rng = _day_rng(self._ident, day)
        if rng.random() >= 0.85:
            return None
        # Starting by 22:00 means even a long run ends before midnight.
        return rng.uniform(19.0, 22.0), rng.uniform(1.3, 1.7)

    def power(self, clock: _Clock) -> float:
        if clock.day != self._day:
            self._day = clock.day
            self._run = self._plan(clock.day)
        run = self._run
        noise = self._rng.random()
        if run is not None:
            into = (clock.hour - run[0]) / run[1]
            if 0.0 <= into < 1.0:
                for end, heating in _DISHWASHER_PHASES:
                    if into < end:
                        if heating:
                            return min(self._max, (1950.0 + 100.0 * noise) * self._scale)
                        return (90.0 + 20.0 * noise) * self._scale
        return (0.8 + 0.4 * noise) * self._scale


class _EvCharger:
    def __init__(self, rng: random.Random, ident: tuple[object, ...], max_w: float) -> None:
        self._rng = rng
        self._ident = ident
        self._scale = max_w / 11000.0
        self._max = max_w
        self._plans: dict[int, tuple[float, float, float] | None] = {}

    def _plan(self, day: int) -> tuple[float, float, float] | None:
        if day not in self._plans:
            if len(self._plans) > 4:
                self._plans.clear()
            rng = _day_rng(self._ident, day)
            plan = None
            if rng.random() < 0.45:
                watts = rng.uniform(7000.0, 11000.0) * self._scale
                plan = (rng.uniform(17.5, 22.0), rng.uniform(1.0, 4.0), watts)
            self._plans[day] = plan
        return self._plans[day]

    def power(self, clock: _Clock) -> float:
        # A late session runs past midnight, so yesterday's plan can still be charging.
        for day, hour in ((clock.day, clock.hour), (clock.day - 1, clock.hour + 24.0)):
            plan = self._plan(day)
            if plan is not None and plan[0] <= hour < plan[0] + plan[1]:
                return min(self._max, plan[2] * self._rng.uniform(0.99, 1.0))
        return 0.0


class _Solar:
    def __init__(self, rng: random.Random, ident: tuple[object, ...], max_w: float) -> None:
        self._rng = rng
        self._ident = ident
        self._max = max_w
        self._day = -(10**9)
        self._cloud = 1.0
        self._flicker = 0.0

    def _cloudiness(self, day: int) -> float:
        rng = _day_rng(self._ident, day)
        if rng.random() < 0.4:
            return rng.uniform(0.9, 1.0)
        return rng.uniform(0.15, 0.85)

    def power(self, clock: _Clock) -> float:
        if clock.day != self._day:
            self._day = clock.day
            self._cloud = self._cloudiness(clock.day)
        # Drawn every step, daylight or not, so the stream stays aligned to the step count.
        self._flicker = 0.8 * self._flicker + 0.2 * self._rng.random()
        season = clock.season
        daylight = 12.0 + 3.5 * season
        # Solar noon sits on standard time; DST moves it an hour later on the wall clock.
        sunrise = 12.5 + clock.dst_hours - daylight / 2.0
        x = (clock.hour - sunrise) / daylight
        if x <= 0.0 or x >= 1.0:
            return 0.0
        peak = self._max * (0.6 + 0.25 * season) * self._cloud
        passing_clouds = 1.0 - 0.5 * (1.0 - self._cloud) * self._flicker
        return min(self._max, peak * passing_clouds * math.pow(math.sin(math.pi * x), 1.3))


class _Consumer:
    """Anything not modelled specifically: base load with morning and evening bumps."""

    def __init__(self, rng: random.Random, max_w: float) -> None:
        self._rng = rng
        self._max = max_w

    def power(self, clock: _Clock) -> float:
        hour = clock.hour
        bump = 1.0 if 6.5 <= hour < 9.0 or 17.5 <= hour < 22.5 else 0.0
        return min(self._max, self._max * (0.04 + 0.2 * bump) * self._rng.uniform(0.8, 1.2))


class _Battery:
    # Two hours at full power is a typical home battery (5 kW / 10 kWh).
    _HOURS: Final = 2.0
    _EFFICIENCY: Final = 0.95
    _RESERVE: Final = 0.1

    def __init__(self, rng: random.Random, max_w: float, step_s: float) -> None:
        self._max = max_w
        self._capacity_wh = max_w * self._HOURS
        self._soc_wh = self._capacity_wh * rng.uniform(0.3, 0.6)
        self._step_h = step_s / 3600.0

    def dispatch(self, clock: _Clock, net_w: float) -> float:
        """Battery power for this step (+ charging) given the house's net draw without it."""
        if net_w < 0.0:
            room_w = (self._capacity_wh - self._soc_wh) / (self._step_h * self._EFFICIENCY)
            watts = min(-net_w, self._max, room_w)
            self._soc_wh += watts * self._step_h * self._EFFICIENCY
            return watts
        hour = clock.hour
        # Held for the evening peak instead of being drained by the afternoon base load.
        if net_w > 0.0 and (hour >= 16.0 or hour < 7.0):
            floor_wh = self._capacity_wh * self._RESERVE
            available_w = max(0.0, (self._soc_wh - floor_wh) / self._step_h)
            watts = min(net_w, self._max, available_w)
            self._soc_wh -= watts * self._step_h
            return -watts
        return 0.0


def _consumer_model(
    device: DeviceSpec, rng: random.Random, ident: tuple[object, ...], step_s: float
) -> _Model:
    # The profile comes from the key's stem, so fleet copies like "fridge_2" behave as fridges.
    stem = device.key.rstrip("0123456789").rstrip("_") or device.key
    if stem == "heat_pump":
        return _HeatPump(rng, step_s, device.max_watts)
    if stem == "fridge":
        return _Fridge(rng, step_s, device.max_watts)
    if stem == "dishwasher":
        return _Dishwasher(rng, ident, device.max_watts)
    return _Consumer(rng, device.max_watts)


_JITTER_MAX_MS: Final = 5_000
_LATE_FRACTION: Final = 0.015
_MAX_LATENESS_S: Final = 1_800.0
_GAP_MIN_S: Final = 1_200.0
_GAP_MAX_S: Final = 7_200.0
_US: Final = 1_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


def _gap_steps(rng: random.Random, n_steps: int, step_s: int) -> frozenset[int]:
    total_s = n_steps * step_s
    count = 2 + int(total_s // (5 * 86400))
    steps: set[int] = set()
    for _ in range(count):
        duration = min(rng.uniform(_GAP_MIN_S, _GAP_MAX_S), total_s / 2.0)
        # Kept off the run's edges: a gap is only visible between two readings.
        latest_start = total_s - duration - 2 * step_s
        if duration < _GAP_MIN_S or latest_start <= step_s:
            continue
        begin = rng.uniform(step_s, latest_start)
        steps.update(range(math.ceil(begin / step_s), math.ceil((begin + duration) / step_s)))
    return frozenset(steps)


def _validate(
    household: HouseholdSpec,
    start: datetime,
    days: float,
    step_seconds: int,
    offline_device: str | None,
    offline_hours: float,
) -> None:
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    if not math.isfinite(days) or days < 0:
        raise ValueError("days must be finite and >= 0")
    if step_seconds < 1:
        raise ValueError("step_seconds must be >= 1")
    if not math.isfinite(offline_hours) or offline_hours < 0:
        raise ValueError("offline_hours must be finite and >= 0")
    ZoneInfo(household.timezone)
    keys = [d.key for d in household.devices]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate device keys in household {household.key!r}")
    if offline_device is not None and offline_device not in keys:
        raise ValueError(f"offline_device {offline_device!r} is not a device of the household")
    for d in household.devices:
        if not (math.isfinite(d.max_watts) and d.max_watts > 0):
            raise ValueError(f"device {d.key!r}: max_watts must be finite and > 0")
    grids = [d for d in household.devices if d.kind == "grid"]
    if len(grids) > 1:
        raise ValueError(f"household {household.key!r} has more than one grid meter")
    if grids:
        # The meter reading is derived from the other devices; clamping it to a too-small
        # maximum would silently break grid = consumption + battery - solar.
        import_w, export_w = _worst_case_grid_watts(
            [d for d in household.devices if d.kind != "grid"]
        )
        if grids[0].max_watts < max(import_w, export_w):
            raise ValueError(
                f"grid meter {grids[0].key!r}: max_watts {grids[0].max_watts} is below the "
                f"worst case of the other devices ({max(import_w, export_w)} W)"
            )


def generate(
    household: HouseholdSpec,
    *,
    start: datetime,
    days: float,
    seed: int,
    step_seconds: int = 60,
    gaps: bool = True,
    shuffle_arrivals: bool = True,
    offline_device: str | None = None,
    offline_hours: float = 6.0,
) -> Iterator[Reading]:
    """Stream readings for every device of the household, one per device per step.

    Arguments are checked here, eagerly; the readings themselves are produced lazily with
    memory bounded by the number of devices plus the few readings held back as late arrivals.
    """
    _validate(household, start, days, step_seconds, offline_device, offline_hours)
    return _stream(
        household,
        start=start.astimezone(UTC),
        days=days,
        seed=seed,
        step_seconds=step_seconds,
        gaps=gaps,
        shuffle_arrivals=shuffle_arrivals,
        offline_device=offline_device,
        offline_hours=offline_hours,
    )


def _stream(
    household: HouseholdSpec,
    *,
    start: datetime,
    days: float,
    seed: int,
    step_seconds: int,
    gaps: bool,
    shuffle_arrivals: bool,
    offline_device: str | None,
    offline_hours: float,
) -> Iterator[Reading]:
    tz = ZoneInfo(household.timezone)
    southern = _is_southern(household.timezone)
    step_us = step_seconds * _US
    start_us = (start - _EPOCH) // timedelta(microseconds=1)
    end_us = start_us + round(days * 86400 * _US)
    # Whole steps only, so every jittered timestamp stays before the end of the run.
    n_steps = (end_us - start_us) // step_us
    offline_cutoff_us = end_us - round(offline_hours * 3600 * _US)

    # Sorted by key: that order breaks timestamp ties, and the index doubles as the tie-break.
    devices = sorted(household.devices, key=lambda d: d.key)
    n_dev = len(devices)
    keys = [d.key for d in devices]
    loads: list[tuple[int, _Model]] = []
    solars: list[tuple[int, _Model]] = []
    batteries: list[tuple[int, _Battery]] = []
    grid_index = -1
    for i, d in enumerate(devices):
        ident: tuple[object, ...] = (seed, household.key, d.key)
        values_rng = _rng(*ident, "values")
        if d.kind == "consumer":
            loads.append((i, _consumer_model(d, values_rng, ident, step_seconds)))
        elif d.kind == "ev_charger":
            loads.append((i, _EvCharger(values_rng, ident, d.max_watts)))
        elif d.kind == "solar":
            solars.append((i, _Solar(values_rng, ident, d.max_watts)))
        elif d.kind == "battery":
            batteries.append((i, _Battery(values_rng, d.max_watts, step_seconds)))
        else:
            grid_index = i

    # Separate streams for jitter, gaps and lateness: switching gaps or shuffling off must
    # not change a single value or timestamp of the readings that remain.
    jitter = [_rng(seed, household.key, k, "jitter").random for k in keys]
    late = [_rng(seed, household.key, k, "arrival").random for k in keys]
    skips = [
        _gap_steps(_rng(seed, household.key, k, "gaps"), n_steps, step_seconds)
        if gaps
        else frozenset[int]()
        for k in keys
    ]
    cutoffs = [offline_cutoff_us if k == offline_device else end_us for k in keys]

    # Below 0.4 of a step, so a device's timestamps stay strictly increasing and never
    # overtake the next step of any device.
    jitter_span_ms = max(1, min(_JITTER_MAX_MS, step_seconds * 400))
    jitter_td = [timedelta(milliseconds=ms) for ms in range(jitter_span_ms)]
    late_min_s = 1.5 * step_seconds
    late_max_s = max(_MAX_LATENESS_S, 2.0 * late_min_s)

    clock = _Clock()
    values = [0.0] * n_dev
    step_td = timedelta(seconds=step_seconds)
    base = start
    refresh_us = start_us
    offset_s = 0
    season_day = None
    held: list[tuple[int, int, Reading]] = []  # (arrival µs, sequence, reading)
    sequence = 0

    for k in range(n_steps):
        base_us = start_us + k * step_us
        if base_us >= refresh_us:
            # Offsets change only at zone transitions, all on quarter hours in current tzdata.
            local = base.astimezone(tz)
            offset = local.utcoffset() or timedelta(0)
            offset_s = int(offset.total_seconds())
            dst = local.dst() or timedelta(0)
            clock.dst_hours = dst.total_seconds() / 3600.0
            refresh_us = (base_us // (900 * _US) + 1) * 900 * _US
        local_s = base_us // _US + offset_s
        day, second_of_day = divmod(local_s, 86400)
        clock.day = day
        clock.hour = second_of_day / 3600.0
        if day != season_day:
            season_day = day
            day_of_year = date.fromordinal(_EPOCH_ORDINAL + day).timetuple().tm_yday
            season = math.cos(2.0 * math.pi * (day_of_year - 172) / 365.25)
            clock.season = -season if southern else season

        consumption = 0.0
        for i, model in loads:
            w = round(model.power(clock), 1)
            values[i] = w
            consumption += w
        production = 0.0
        for i, model in solars:
            w = round(model.power(clock), 1)
            values[i] = w
            production += w
        net = consumption - production
        charging = 0.0
        for i, battery in batteries:
            w = round(battery.dispatch(clock, net), 1)
            values[i] = w
            net += w
            charging += w
        if grid_index >= 0:
            values[grid_index] = round(consumption + charging - production, 1)

        due: list[tuple[int, int, float]] = []
        for i in range(n_dev):
            jitter_ms = int(jitter[i]() * jitter_span_ms)
            if k in skips[i] or base_us + jitter_ms * 1000 >= cutoffs[i]:
                continue
            due.append((jitter_ms, i, values[i]))
        due.sort()

        for jitter_ms, i, watts in due:
            ts_us = base_us + jitter_ms * 1000
            reading = Reading(keys[i], base + jitter_td[jitter_ms], watts)
            if shuffle_arrivals:
                while held and held[0][0] <= ts_us:
                    yield heapq.heappop(held)[2]
                if late[i]() < _LATE_FRACTION:
                    delay_us = round(late[i]() * (late_max_s - late_min_s) * _US + late_min_s * _US)
                    heapq.heappush(held, (ts_us + delay_us, sequence, reading))
                    sequence += 1
                    continue
            yield reading
        base += step_td

    while held:
        yield heapq.heappop(held)[2]


# Steps generated at once by a Continuation before it starts the model over from there.
_CONTINUATION_STEPS: Final = 8_640


class Continuation:
    """A household's readings from `start` on, handed out as their time comes: each call to
    `due(now)` returns the readings stamped up to `now` not handed out before, in order.

    The running demo's household, fed by the model that seeded its history. Without gaps or
    late arrivals (the history has both): a live reading arrives as it happens, so a "right
    now" question finds one. The model starts over every _CONTINUATION_STEPS steps, from
    where it got to; memory stays bounded by the number of devices.
    """

    def __init__(
        self, household: HouseholdSpec, *, start: datetime, seed: int, step_seconds: int = 60
    ) -> None:
        if not household.devices:
            raise ValueError(f"household {household.key!r} has no devices to continue")
        self._household = household
        self._seed = seed
        self._step = step_seconds
        self._from = start
        self._stream = self._open()
        self._next: Reading | None = None

    def _open(self) -> Iterator[Reading]:
        span = timedelta(seconds=self._step * _CONTINUATION_STEPS)
        stream = generate(
            self._household,
            start=self._from,
            days=span / timedelta(days=1),
            seed=self._seed,
            step_seconds=self._step,
            gaps=False,
            shuffle_arrivals=False,
        )
        self._from += span
        return stream

    def due(self, now: datetime, *, limit: int | None = None) -> list[Reading]:
        """The readings stamped up to `now`, at most `limit` of them (the rest come next)."""
        readings: list[Reading] = []
        while limit is None or len(readings) < limit:
            if self._next is None:
                self._next = next(self._stream, None)
                if self._next is None:
                    self._stream = self._open()
                    continue
            if self._next.ts > now:
                break
            readings.append(self._next)
            self._next = None
        return readings
