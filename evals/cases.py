"""The eval's cases, read from JSONL datasets (evals/datasets/*.jsonl; schema in the
datasets' README), and the reference figures they expect, computed with the independent
integrator (evals.reference) from the fixtures' synthetic readings."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from demo.synthetic import generate
from evals import reference
from evals.fixtures import DAYS, TARIFF, Fixture

DATASETS = Path(__file__).parent / "datasets"
CAP = timedelta(minutes=15)
Expect = Literal["answer", "proposal", "command", "clarify", "refusal", "smalltalk", "none"]
FIGURES = ("consumption", "solar", "import", "export", "cost", "device", "device_cost",
           "projected_cost", "projected_low", "projected_high", "typical_run")  # fmt: skip
MONEY = frozenset({"cost", "device_cost", "projected_cost", "projected_low", "projected_high"})


@dataclass(frozen=True)
class Figure:
    figure: str
    window: str
    device: str | None = None
    household: str | None = None  # another fixture's figure (forbidden numbers)
    tolerance: float = 0.01


@dataclass(frozen=True)
class Turn:
    user: str
    expect: Expect
    branch: str | None = None
    window: str | None = None
    numbers: tuple[Figure, ...] = ()
    forbid_numbers: tuple[Figure, ...] = ()
    command: dict[str, str] | None = None


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    household: str
    turns: tuple[Turn, ...]
    source: str = ""
    note: str = ""
    tags: tuple[str, ...] = field(default=())


class DatasetError(ValueError):
    pass


def _figure(raw: dict[str, Any], where: str) -> Figure:
    if raw.get("figure") not in FIGURES:
        raise DatasetError(f"{where}: figure must be one of {', '.join(FIGURES)}")
    if raw["figure"] in ("device", "device_cost") and not raw.get("device"):
        raise DatasetError(f"{where}: a device figure names its device")
    return Figure(
        raw["figure"],
        raw["window"],
        raw.get("device"),
        raw.get("household"),
        float(raw.get("tolerance", 0.01)),
    )


def load(paths: list[Path] | None = None) -> list[Case]:
    """Every case of the given files (default: all datasets), in file order; ids unique."""
    files = paths or sorted(DATASETS.glob("*.jsonl"))
    cases: list[Case] = []
    seen: set[str] = set()
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path.name}:{n}"
            try:
                raw = json.loads(line)
                turns = tuple(
                    Turn(
                        user=t["user"],
                        expect=t["expect"],
                        branch=(t.get("route") or {}).get("branch"),
                        window=(t.get("route") or {}).get("window"),
                        numbers=tuple(_figure(f, where) for f in t.get("numbers") or ()),
                        forbid_numbers=tuple(
                            _figure(f, where) for f in t.get("forbid_numbers") or ()
                        ),
                        command=t.get("command"),
                    )
                    for t in raw["turns"]
                )
                case = Case(
                    raw["id"],
                    raw["category"],
                    raw["household"],
                    turns,
                    path.name,
                    raw.get("note", ""),
                    tuple(raw.get("tags", ())),
                )
            except (KeyError, TypeError, json.JSONDecodeError) as exc:
                raise DatasetError(f"{where}: {exc!r}") from exc
            if case.id in seen:
                raise DatasetError(f"{where}: duplicate id {case.id!r}")
            seen.add(case.id)
            cases.append(case)
    return cases


# -- reference figures -----------------------------------------------------------------


def window_bounds(name: str, timezone: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of a named window, from zoneinfo alone (not telemetry.windows)."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)

    def day(offset: int) -> datetime:
        d = midnight.date() + timedelta(days=offset)
        return datetime(d.year, d.month, d.day, tzinfo=zone)

    monday = -local.weekday()
    first = local.date().replace(day=1)
    last_month_first = (first - timedelta(days=1)).replace(day=1)
    bounds = {
        "today": (day(0), now),
        "yesterday": (day(-1), day(0)),
        # The last N full local days, today excluded (the design's 3days, week, 30days).
        "last_3_days": (day(-3), day(0)),
        "last_7_days": (day(-7), day(0)),
        "last_30_days": (day(-30), day(0)),
        "this_week": (day(monday), now),
        "last_week": (day(monday - 7), day(monday)),
        "this_month": (datetime(first.year, first.month, 1, tzinfo=zone), now),
        "last_month": (
            datetime(last_month_first.year, last_month_first.month, 1, tzinfo=zone),
            datetime(first.year, first.month, 1, tzinfo=zone),
        ),
    }
    if name in bounds:
        return bounds[name]
    if name.startswith("like:"):
        return _same_span(name, timezone, now)
    offsets = day_offsets(name, local.date())
    if offsets is None:
        raise DatasetError(f"no reference window {name!r}")
    since, until = offsets
    return day(since), (now if until == 0 else day(until + 1))


def _same_span(name: str, timezone: str, now: datetime) -> tuple[datetime, datetime]:
    """`like:W~R`: the whole window W cut to as much of it as has elapsed of the running
    window R (its local days so far, to the wall time it is now): what a like-for-like
    comparison of R with W measures of W (`like:yesterday~today`: yesterday until now's
    time of day; `like:month:-1~this_month`)."""
    whole, tilde, running = name.removeprefix("like:").partition("~")
    if not tilde or not whole or not running:
        raise DatasetError(f"window {name!r}: like:WHOLE~RUNNING")
    start, end = window_bounds(whole, timezone, now)
    since, until = window_bounds(running, timezone, now)
    if until != now or end > since:
        raise DatasetError(f"window {name!r}: {running} must run to now, after {whole}")
    zone = ZoneInfo(timezone)
    local_now = now.astimezone(zone)
    elapsed = (local_now.date() - since.astimezone(zone).date()).days
    day = start.astimezone(zone).date() + timedelta(days=elapsed)
    wall = datetime(
        day.year, day.month, day.day, local_now.hour, local_now.minute, local_now.second,
        local_now.microsecond, tzinfo=zone,
    )  # fmt: skip
    return start, min(max(wall, start), end)


def day_offsets(name: str, today: date) -> tuple[int, int] | None:
    """The local days of a window written as days after `today`, both included, or None
    for a named window (`today`, `last_week`, ...):

        days:A:B   from A to B days after today (`days:-14:-8`; B = 0 runs to now)
        week:K     the Monday-Sunday week K weeks after this one (`week:-2`; 0 to now)
        month:K    the calendar month K months after this one (`month:-2`; 0 to now)
    """
    kind, _, rest = name.partition(":")
    if kind not in ("days", "week", "month"):
        return None
    try:
        numbers = [int(part) for part in rest.split(":")]
    except ValueError as exc:
        raise DatasetError(f"window {name!r}: takes whole numbers") from exc
    if len(numbers) != (2 if kind == "days" else 1):
        raise DatasetError(f"window {name!r}: days:A:B, week:K or month:K")
    if kind == "days":
        first, last = numbers
    elif kind == "week":
        monday = -today.weekday() + 7 * numbers[0]
        first, last = monday, min(monday + 6, 0)
    else:
        year, month = divmod(today.year * 12 + today.month - 1 + numbers[0], 12)
        start = date(year, month + 1, 1)
        after = date(year + 1, 1, 1) if month == 11 else date(year, month + 2, 1)
        first = (start - today).days
        last = min((after - today).days - 1, 0)
    if not first <= last <= 0:
        raise DatasetError(f"window {name!r}: must lie before today's end, first day first")
    return first, last


@cache
def _readings(fixture: Fixture) -> tuple[reference.Raw, ...]:
    start = fixture.end - timedelta(days=DAYS)
    return tuple(
        reference.Raw(r.device_key, r.ts, r.watts)
        for r in generate(fixture.spec, start=start, days=DAYS, seed=fixture.seed)
    )


@cache
def _figures(fixture: Fixture, window: str) -> reference.Figures:
    """Every reference figure of a window: the same for every case that asks about it, and
    most of an eval run's time when computed for each."""
    start, end = window_bounds(window, fixture.spec.timezone, fixture.now)
    devices = [reference.Dev(d.key, d.kind) for d in fixture.spec.devices]
    return reference.figures(
        devices,
        _readings(fixture),
        start=start,
        end=end,
        now=fixture.now,
        cap=CAP,
        tariff=TARIFF,
        timezone=fixture.spec.timezone,
    )


def own_values(fixture: Fixture, figure: Figure, windows: Iterable[str]) -> list[float]:
    """Every reference value of `fixture`'s household of `figure`'s kind (cost, or an
    energy in kWh) over `windows`: what an answer about that household may state."""
    values: list[float] = []
    for window in dict.fromkeys(windows):
        got = _figures(fixture, window)
        if figure.figure in ("cost", "device_cost"):
            values += [got.cost, *got.device_cost.values()]
        else:
            values += [got.consumption_kwh, got.solar_kwh, got.import_kwh, got.export_kwh]
            values += [kwh for pair in got.per_device.values() for kwh in pair]
    return values


PROJECTION_HISTORY = 14  # days, as telemetry.projection.HISTORY_DAYS (a test holds them equal)


def _projected(fixture: Fixture, figure: Figure) -> float:
    """projected_cost, projected_low, projected_high of a running window (today, this_week,
    this_month): reference.projection from the whole days before today the readings cover."""
    zone = ZoneInfo(fixture.spec.timezone)
    today = fixture.now.astimezone(zone).date()
    first_reading = fixture.end - timedelta(days=DAYS)
    daily = []
    for k in range(PROJECTION_HISTORY, 0, -1):
        day = f"days:{-k}:{-k}"
        if window_bounds(day, fixture.spec.timezone, fixture.now)[0] >= first_reading:
            got = _figures(fixture, day)
            daily.append(got.cost - got.fixed_charges)
    ends = {
        "today": today + timedelta(days=1),
        "this_week": today + timedelta(days=7 - today.weekday()),
        "this_month": (today.replace(day=28) + timedelta(days=4)).replace(day=1),
    }
    if figure.window not in ends:
        raise DatasetError(f"{figure.figure}: window {figure.window!r} is not running")
    end = datetime(*ends[figure.window].timetuple()[:3], tzinfo=zone).astimezone(UTC)
    so_far = _figures(fixture, figure.window)
    start = window_bounds(figure.window, fixture.spec.timezone, fixture.now)[0]
    days_total = (ends[figure.window] - start.astimezone(zone).date()).days
    to_come = TARIFF.daily_fixed_charge * (days_total - so_far.local_days)
    remaining = (end - fixture.now) / timedelta(days=1)
    value = dict(
        zip(
            ("projected_cost", "projected_low", "projected_high"),
            reference.projection(so_far.cost, daily, remaining, to_come),
            strict=True,
        )
    ).get(figure.figure)
    if value is None:
        raise DatasetError(f"no figure {figure.figure!r}")
    return value


def _typical_run(fixture: Fixture, figure: Figure) -> float:
    """The median run (reference.runs) of `figure.device` over its window's quarter hours."""
    keys = {d.name.casefold(): d for d in fixture.spec.devices}
    dev = keys.get((figure.device or "").casefold())
    if dev is None:
        raise DatasetError(f"no device {figure.device!r} in {fixture.spec.key}")
    start, end = (
        b.astimezone(UTC) for b in window_bounds(figure.window, fixture.spec.timezone, fixture.now)
    )  # quarter hours are counted in UTC: local wall time repeats and skips
    edges = [
        start + timedelta(minutes=15 * k)
        for k in range(int((end - start) / timedelta(minutes=15)) + 1)
    ]
    buckets = reference.series(
        [reference.Dev(dev.key, dev.kind)],
        _readings(fixture),
        edges=edges,
        now=fixture.now,
        cap=CAP,
    )
    found = reference.runs([b[dev.key][0] for b in buckets])
    if not found:
        raise DatasetError(f"{figure.device!r} has no run in {figure.window}")
    return statistics.median(found)


def expected(fixture: Fixture, figure: Figure) -> float:
    """The reference value of `figure` in `fixture`'s household, as of its `now`. Two
    window forms state an explanation's figures (reference.explanation):

        mean:W1+W2      the mean of the figure over the windows (a usual baseline)
        change:A~W1+W2  how far A's figure is from that mean, as people state it (its size:
                        "4.30 EUR less"); an energy's baseline scaled to A's local days
                        (a cost's is not: its days are a part of the change)
    """
    if figure.figure.startswith("projected"):
        return _projected(fixture, figure)
    if figure.figure == "typical_run":
        return _typical_run(fixture, figure)
    kind, _, rest = figure.window.partition(":")
    if kind in ("mean", "change"):
        window, tilde, baselines = rest.partition("~") if kind == "change" else ("", "", rest)
        names = baselines.split("+")
        if not all(names) or (kind == "change" and not (tilde and window)):
            raise DatasetError(f"window {figure.window!r}: mean:W1+W2 or change:A~W1+W2")
        mean = sum(expected(fixture, replace(figure, window=w)) for w in names) / len(names)
        if kind == "mean":
            return mean
        days = sum(_figures(fixture, w).local_days for w in names) / len(names)
        scale = _figures(fixture, window).local_days / days if figure.figure != "cost" else 1.0
        return abs(expected(fixture, replace(figure, window=window)) - mean * scale)
    got = _figures(fixture, figure.window)
    if figure.figure in ("device", "device_cost"):
        keys = {d.name.casefold(): d.key for d in fixture.spec.devices}
        key = keys.get((figure.device or "").casefold())
        if key is None:
            raise DatasetError(f"no device {figure.device!r} in {fixture.spec.key}")
        if figure.figure == "device_cost":
            if key not in got.device_cost:
                raise DatasetError(f"{figure.device!r} has no cost: it uses no energy")
            return got.device_cost[key]
        return got.per_device[key][0]
    return {
        "consumption": got.consumption_kwh,
        "solar": got.solar_kwh,
        "import": got.import_kwh,
        "export": got.export_kwh,
        "cost": got.cost,
    }[figure.figure]
