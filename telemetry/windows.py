"""Analytics windows in local time: named and explicit windows, local days and series edges.

Everything is computed in the household's IANA timezone and handed out as UTC instants.

- A local day starts at the first instant whose local date is that day: local midnight, or,
  where midnight falls in a DST gap, the end of the gap. A day lasts until the next one
  starts, so it may be 23, 23.5, 24.5 or 25 hours long. Where clocks are turned back across
  midnight (America/Goose_Bay until 2010: 00:01 back to 23:01), the repeated minutes of the
  old date belong to the day that has already begun; a date a zone skipped entirely
  (Pacific/Apia, 2011-12-30) is an empty day that no window touches.
- `day` and `month` run from the start of today (of the month's first day) to `now`; the
  other names are whole local days that end where today starts.
- A series bucket edge sits wherever the local wall clock reads a whole hour (quarter hour),
  both occurrences of a repeated one included, and at every local day start, so hours nest in
  days and quarter hours in hours even where midnight itself does not exist.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

WindowName = Literal["day", "yesterday", "3days", "week", "month", "30days"]
WINDOW_NAMES: tuple[WindowName, ...] = get_args(WindowName)
Step = Literal["15m", "1h", "1d"]

MAX_EXPLICIT_DAYS = 400

# Named windows made of whole local days, by how many days they reach back from today.
_WHOLE_DAYS = {"yesterday": 1, "3days": 3, "week": 7, "30days": 30}
_STEP_MINUTES = {"15m": 15, "1h": 60}
_PLAIN_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Files in the zoneinfo directories that load as zones but are not IANA zone names:
# localtime is the host's own setting, posixrules a template, Factory a placeholder.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})
# Offsets jump by at most a day (Apia skipped one, Alaska repeated one in 1867), so wall
# times further than this from a window's ends cannot occur inside it.
_WALL_MARGIN = timedelta(days=2)
_SECOND = timedelta(seconds=1)
_EARLIEST = datetime(2, 1, 1, tzinfo=UTC)


class WindowError(ValueError):
    """A window the caller asked for that cannot be served; `code` says which part is wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Window:
    name: str  # a WindowName, or "custom" for an explicit window
    start: datetime  # UTC
    end: datetime  # UTC, exclusive
    timezone: str  # the IANA name the window was computed in

    def __post_init__(self) -> None:
        for instant in (self.start, self.end):
            if instant.utcoffset() != timedelta(0):
                raise ValueError(f"window bounds must be aware UTC datetimes, got {instant!r}")
        if self.start > self.end:
            raise ValueError(f"window starts after it ends: {self.start} > {self.end}")

    def local_days(self) -> list[date]:
        """Every local date whose day overlaps [start, end), in order."""
        if self.start >= self.end:
            return []
        tz = zone(self.timezone)
        day = _day_of(self.start, tz)
        days = [day]
        while True:
            day += timedelta(days=1)
            begins = local_day_start(day, tz)
            if begins >= self.end:
                return days
            # A skipped date's day is empty: it starts where the next one does.
            if local_day_start(day + timedelta(days=1), tz) > begins:
                days.append(day)


@functools.cache
def _zone_names() -> frozenset[str]:
    # Read once: scanning the zoneinfo directories takes tens of milliseconds.
    return frozenset(available_timezones()) - _NOT_ZONES


def southern(timezone: str) -> bool:
    """Whether the zone's place lies south of the equator (its seasons are the other way
    round): by the latitude the tz database's zone1970.tab (or zone.tab) gives it; for a
    zone it does not list (an alias such as Australia/ACT, Etc/GMT-10), by whether its
    clocks go forward in the northern winter, and otherwise north."""
    latitude = _latitudes().get(timezone)
    if latitude is not None:
        return latitude < 0
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    january, july = (datetime(2025, m, 1, 12, tzinfo=tz).utcoffset() for m in (1, 7))
    return january is not None and july is not None and january > july


@functools.cache
def _latitudes() -> dict[str, float]:
    """Zone name -> latitude in degrees, from the first tz database table found: the
    system's (zoneinfo.TZPATH), else the tzdata package's."""
    for text in _zone_tables():
        found = {}
        for line in text.splitlines():
            fields = line.split("\t")
            if line.startswith("#") or len(fields) < 3:
                continue
            m = _COORDINATES.match(fields[1])
            if m is not None:
                degrees, minutes, seconds = int(m[2]), int(m[3]), int(m[4] or 0)
                sign = -1 if m[1] == "-" else 1
                found[fields[2]] = sign * (degrees + minutes / 60 + seconds / 3600)
        if found:
            return found
    return {}


def _zone_tables() -> Iterator[str]:
    for name in ("zone1970.tab", "zone.tab"):
        for folder in zoneinfo.TZPATH:
            try:
                yield Path(folder, name).read_text(encoding="utf-8")
            except OSError:
                continue
        try:
            yield importlib.resources.files("tzdata.zoneinfo").joinpath(name).read_text("utf-8")
        except (ModuleNotFoundError, OSError):
            continue


# ISO 6709 latitude as zone.tab writes it: +DDMM or +DDMMSS, then the longitude.
_COORDINATES = re.compile(r"([+-])([0-9]{2})([0-9]{2})([0-9]{2})?[+-]")


def zone(name: str) -> ZoneInfo:
    """The zone with IANA name `name`; anything else (paths, posix/ and right/ variants,
    the host's localtime) is a WindowError."""
    if name not in _zone_names():
        raise WindowError(
            "invalid_timezone",
            f"{_shown(name)} is not an IANA timezone name such as Europe/Berlin.",
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise WindowError("invalid_timezone", f"Timezone {_shown(name)} cannot be loaded.") from exc


@functools.lru_cache(maxsize=8192)  # a pure function of its arguments, asked on every request
def local_day_start(d: date, tz: ZoneInfo) -> datetime:
    """The UTC instant local day `d` starts: the first instant whose local date is `d`.

    Local midnight is read with fold=0, so a repeated midnight gives its first occurrence.
    A midnight inside a DST gap does not exist: zoneinfo reads it with the offset from before
    the gap, which lands past the transition, and the round trip shows another wall time.
    The day then starts at the transition, which lies between that reading and the one with
    the offset from after the gap (fold=1); it is found by bisection, to the second, as
    every transition is.
    """
    midnight = datetime.combine(d, time(), tzinfo=tz)
    start = midnight.astimezone(UTC)
    if _wall(start, tz) == midnight.replace(tzinfo=None):
        return start
    before = midnight.replace(fold=1).astimezone(UTC)
    while start - before > _SECOND:
        middle = before + (start - before) // 2
        middle -= timedelta(microseconds=middle.microsecond)
        if middle.astimezone(tz).date() >= d:
            start = middle
        else:
            before = middle
    return start


def resolve(
    name: str | None,
    *,
    timezone: str,
    now: datetime,
    start: str | None = None,
    end: str | None = None,
) -> Window:
    """The window `name`, or the explicit window [start, end), in `timezone` as of `now`."""
    if now.utcoffset() is None:
        # A programming error, not a bad request: the caller always knows the time.
        raise ValueError(f"now must be an aware datetime, got {now!r}")
    now = now.astimezone(UTC)
    tz = zone(timezone)
    if start is None and end is None:
        if name is None:
            raise WindowError(
                "invalid_window", f"Give a window ({_names()}) or both start and end."
            )
        return _named(name, tz, timezone, now)
    if name is not None:
        raise WindowError("invalid_window", "Give either a window name or start and end, not both.")
    if start is None or end is None:
        raise WindowError("invalid_range", "An explicit window needs both start and end.")
    return _explicit(_instant(start, tz, "start"), _instant(end, tz, "end"), timezone, tz, now)


# The shortest a bucket of each step can be (a local day: 23 hours on a DST day).
_SHORTEST = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "1d": timedelta(hours=23)}


def same_span(window: Window, running: Window) -> Window:
    """`window` cut to as much of it as has elapsed of `running` (a window still running):
    the same number of local days and the same local time of day, so that this month so far
    (1 to 4 December, 14:29) is compared with 1 to 4 November, 14:29. Never longer than
    `window`; a wall time a clock change skipped or repeated resolves as zoneinfo does."""
    tz = zone(window.timezone)
    start, now = running.start.astimezone(tz), running.end.astimezone(tz)
    elapsed_days = (now.date() - start.date()).days
    begun = window.start.astimezone(tz)
    day = begun.date() + timedelta(days=elapsed_days)
    wall = datetime.combine(day, now.time().replace(tzinfo=None), tzinfo=tz)
    end = max(min(wall.astimezone(UTC), window.end), window.start)
    return Window(window.name, window.start, end, window.timezone)


def most_buckets(window: Window, step: Step) -> float:
    """An upper bound of how many buckets series_edges gives, cheap to compute: checked
    before the edges are built (a year of quarter hours costs 0.1 s to build)."""
    return (window.end - window.start) / _SHORTEST[step]


def series_edges(window: Window, step: Step) -> list[datetime]:
    """UTC edges of the buckets [edges[i], edges[i + 1]) that cover the window: its start, every
    local boundary of `step` strictly inside it, its end. An empty window has one edge."""
    if window.start >= window.end:
        return [window.start]
    tz = zone(window.timezone)
    inner = _day_starts(window, tz)
    if step != "1d":
        inner |= _wall_boundaries(window, tz, timedelta(minutes=_STEP_MINUTES[step]))
    return [window.start, *sorted(inner), window.end]


def _named(name: str, tz: ZoneInfo, timezone: str, now: datetime) -> Window:
    today = _day_of(now, tz)
    if name == "day":
        return Window(name, local_day_start(today, tz), now, timezone)
    if name == "month":
        return Window(name, local_day_start(today.replace(day=1), tz), now, timezone)
    if name in _WHOLE_DAYS:
        first = today - timedelta(days=_WHOLE_DAYS[name])
        return Window(name, local_day_start(first, tz), local_day_start(today, tz), timezone)
    raise WindowError("invalid_window", f"Unknown window {_shown(name)}; use one of {_names()}.")


def _explicit(start: datetime, end: datetime, timezone: str, tz: ZoneInfo, now: datetime) -> Window:
    if start >= end:
        raise WindowError("invalid_range", "start must be before end.")
    if start >= now:
        raise WindowError("invalid_range", "start must be in the past.")
    end = min(end, now)
    # Counted in local days (wall-clock arithmetic), so a DST change inside the window does
    # not make 400 whole days an hour too long. Measured after clipping: that is what is served.
    limit = (start.astimezone(tz) + timedelta(days=MAX_EXPLICIT_DAYS)).astimezone(UTC)
    if end > limit:
        raise WindowError(
            "invalid_range", f"An explicit window may span at most {MAX_EXPLICIT_DAYS} days."
        )
    return Window("custom", start, end, timezone)


def _instant(text: str, tz: ZoneInfo, which: str) -> datetime:
    """A window bound: an ISO 8601 date-time with an offset, or a date meaning local midnight."""
    try:
        instant = _parse_bound(text, tz, which)
    except OverflowError:
        instant = None
    # Days either side of a bound are looked at too (local days, wall-clock margins), so a
    # bound keeps clear of the start of the calendar. A late end is clipped to now anyway.
    if instant is None or instant < _EARLIEST:
        raise WindowError("invalid_range", f"{which} {_shown(text)} is out of range.")
    return instant


def _parse_bound(text: str, tz: ZoneInfo, which: str) -> datetime:
    if _PLAIN_DATE.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise WindowError(
                "invalid_range", f"{which} {_shown(text)} is not a calendar date."
            ) from exc
        return local_day_start(day, tz)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise WindowError(
            "invalid_range",
            f"{which} {_shown(text)} is neither an ISO 8601 date-time with an offset "
            "(2024-03-01T00:00:00+01:00, 2024-03-01T00:00:00Z) nor a date YYYY-MM-DD.",
        ) from exc
    if parsed.utcoffset() is None:
        raise WindowError(
            "invalid_range",
            f"{which} {_shown(text)} has no UTC offset: add one (Z or +01:00), "
            "or give a date YYYY-MM-DD for local midnight.",
        )
    return parsed.astimezone(UTC)


def _day_of(instant: datetime, tz: ZoneInfo) -> date:
    """The local day `instant` falls in. Usually its local date, but not in minutes repeated
    across midnight, which belong to the day that has already begun."""
    day = instant.astimezone(tz).date()
    while local_day_start(day + timedelta(days=1), tz) <= instant:
        day += timedelta(days=1)
    while local_day_start(day, tz) > instant:
        day -= timedelta(days=1)
    return day


def _day_starts(window: Window, tz: ZoneInfo) -> set[datetime]:
    """Local day starts strictly inside the window."""
    starts: set[datetime] = set()
    day = _day_of(window.start, tz) + timedelta(days=1)
    while (begins := local_day_start(day, tz)) < window.end:
        starts.add(begins)
        day += timedelta(days=1)
    return starts


def _wall_boundaries(window: Window, tz: ZoneInfo, step: timedelta) -> set[datetime]:
    """Instants strictly inside the window at which the local wall clock reads a multiple of
    `step` after midnight: wall times in a gap have none, repeated ones have two."""
    wall = datetime.combine(_wall(window.start, tz).date(), time()) - _WALL_MARGIN
    last = _wall(window.end, tz) + _WALL_MARGIN
    found: set[datetime] = set()
    while wall <= last:
        local = wall.replace(tzinfo=tz)
        first = local.astimezone(UTC)
        second = local.replace(fold=1).astimezone(UTC)
        # The two readings differ only for a repeated wall time or one in a gap; only the
        # repeated one survives the round trip.
        if first == second or _wall(first, tz) == wall:
            found.update(at for at in (first, second) if window.start < at < window.end)
        wall += step
    return found


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def _names() -> str:
    return ", ".join(WINDOW_NAMES)


def _shown(text: str) -> str:
    # Echoed into error messages, so a huge parameter does not make a huge response.
    return repr(text if len(text) <= 64 else text[:64] + "...")
