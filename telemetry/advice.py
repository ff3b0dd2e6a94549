"""When energy is cheapest on a household's tariff, and what one run of a device uses.

The cheapest hours come from the tariff alone: its time-of-use periods over the flat import
price, read quarter hour by quarter hour for each weekday, and merged into spans ("00:00 to
06:15 on sat, sun at 0.12"). A flat tariff has none: every hour costs the same.

A run of a device is a stretch of consecutive local quarter hours in which it drew at least
RUN_WH; its energy is the run's. The typical run is the median of the runs of the last days
(the caller's window); a run cut by the window's start or end counts as it was measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from statistics import median

from telemetry.energy import BucketEnergy
from telemetry.tariff import Tariff, Weekday

RUN_WH = 25.0  # drawn in a quarter hour (100 W on average): the device is running
_QUARTER = timedelta(minutes=15)
_WEEK: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Span:
    days: tuple[Weekday, ...]
    start: str  # HH:MM, local
    end: str  # HH:MM, local; 24:00 for the end of the day
    price: float


def cheapest(tariff: Tariff) -> tuple[Span, ...]:
    """The spans of the week at the tariff's lowest import price, those of the same hours
    on several weekdays as one; empty for a flat tariff."""
    if not tariff.time_of_use:
        return ()
    prices = _grid(tariff)
    low = min(min(p) for p in prices.values())
    spans: dict[tuple[int, int], list[Weekday]] = {}
    for day in _WEEK:
        q = 0
        while q < 96:
            if prices[day][q] != low:
                q += 1
                continue
            first = q
            while q < 96 and prices[day][q] == low:
                q += 1
            spans.setdefault((first, q), []).append(day)
    return tuple(
        Span(tuple(days), _hhmm(first), _hhmm(end), low)
        for (first, end), days in sorted(spans.items(), key=lambda s: (_WEEK.index(s[1][0]), s[0]))
    )


def price_range(tariff: Tariff) -> tuple[float, float]:
    """The lowest and the highest import price of any quarter hour of the week."""
    every = [p for prices in _grid(tariff).values() for p in prices]
    return min(every), max(every)


def runs(buckets: Sequence[BucketEnergy]) -> list[float]:
    """The energy (kWh) of each run in a device's quarter-hour buckets (in order)."""
    out: list[float] = []
    wh, last = 0.0, None
    for b in buckets:
        if b.wh_pos < RUN_WH:
            continue
        if last is not None and b.bucket - last == _QUARTER:
            wh += b.wh_pos
        else:
            if wh:
                out.append(wh / 1000)
            wh = b.wh_pos
        last = b.bucket
    if wh:
        out.append(wh / 1000)
    return out


def typical_run(found: Sequence[float]) -> float | None:
    """The median run's energy (kWh) of runs found (runs); None without a run."""
    return median(found) if found else None


def _grid(tariff: Tariff) -> dict[Weekday, list[float]]:
    """The import price of each local quarter hour of each weekday."""
    return {day: [tariff.import_price_at(day, _clock(q)) for q in range(96)] for day in _WEEK}


def _clock(quarter: int) -> time:
    return (datetime.min + quarter * _QUARTER).time()


def _hhmm(quarter: int) -> str:
    return "24:00" if quarter == 96 else f"{quarter // 4:02d}:{quarter % 4 * 15:02d}"
