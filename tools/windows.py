"""The windows a tool may ask about: names, or whole local dates the server checks. The
model never supplies an instant; telemetry.windows turns these into UTC bounds in the
household's timezone.

The calendar periods (this and last week, last month) are computed here as the router
computes them (router.windows.resolve_window; a test holds the two together): tools may
import only telemetry."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from telemetry import windows
from telemetry.windows import Window

WindowName = Literal[
    "today",
    "yesterday",
    "last_3_days",
    "last_7_days",
    "last_30_days",
    "this_week",
    "last_week",
    "this_month",
    "last_month",
    "dates",
]
# Names that are telemetry windows as they are.
_NAMED: dict[str, windows.WindowName] = {
    "today": "day",
    "yesterday": "yesterday",
    "last_3_days": "3days",
    "last_7_days": "week",
    "last_30_days": "30days",
    "this_month": "month",
}
MAX_DAYS = 400


class WindowArg(BaseModel):
    """A window: a name, or `dates` with first_date and last_date (local, inclusive)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: WindowName = Field(description="The period; 'dates' means first_date..last_date.")
    first_date: date | None = Field(description="YYYY-MM-DD, only with name 'dates'.")
    last_date: date | None = Field(description="YYYY-MM-DD inclusive, only with name 'dates'.")

    @model_validator(mode="after")
    def _dates_only_with_dates(self) -> WindowArg:
        given = self.first_date is not None, self.last_date is not None
        if self.name == "dates":
            if given != (True, True):
                raise ValueError("name 'dates' needs both first_date and last_date")
            assert self.first_date is not None
            assert self.last_date is not None
            if self.last_date < self.first_date:
                raise ValueError("last_date is before first_date")
            if (self.last_date - self.first_date).days >= MAX_DAYS:
                raise ValueError(f"at most {MAX_DAYS} days")
        elif any(given):
            raise ValueError("first_date and last_date go only with name 'dates'")
        return self


def resolve(arg: WindowArg, *, timezone: str, now: datetime) -> Window:
    """UTC bounds of the window in the household's timezone; windows.WindowError for one
    that is not possible (a date in the future, say)."""
    if arg.name in _NAMED:
        return windows.resolve(_NAMED[arg.name], timezone=timezone, now=now)
    today = now.astimezone(ZoneInfo(timezone)).date()
    if arg.name == "dates":
        assert arg.first_date is not None
        assert arg.last_date is not None
        first, end = arg.first_date, arg.last_date + timedelta(days=1)
    else:
        first, until = calendar_days(arg.name, today)
        end = until or today + timedelta(days=1)  # to now: the telemetry layer clips it
    window = windows.resolve(
        None, timezone=timezone, now=now, start=first.isoformat(), end=end.isoformat()
    )
    return Window(arg.name, window.start, window.end, window.timezone)


def calendar_days(name: WindowName, today: date) -> tuple[date, date | None]:
    """The first local day of a calendar period and the day it ends before (None: it runs
    to now): weeks run Monday to Sunday, and the current week and month include today."""
    monday = today - timedelta(days=today.weekday())
    first_of_month = today.replace(day=1)
    if name == "this_week":
        return monday, None
    if name == "last_week":
        return monday - timedelta(days=7), monday
    if name == "last_month":
        return (first_of_month - timedelta(days=1)).replace(day=1), first_of_month
    raise ValueError(f"{name!r} is not a calendar period")


def local_dates(window: Window) -> tuple[date, date]:
    """The first and last local date of a window, both included."""
    zone = ZoneInfo(window.timezone)
    last = (window.end - timedelta(microseconds=1)).astimezone(zone).date()
    return window.start.astimezone(zone).date(), last


def earlier(arg: WindowArg, window: Window, count: int) -> list[WindowArg]:
    """The `count` periods like `arg` (resolved as `window`) just before it, the nearest
    first, as whole local dates: a day before a day; a Monday-Sunday week before a week;
    calendar months before whole calendar months (this month so far is the month); else
    as many days as the window holds. A running window's periods are whole: cut them to
    its span (telemetry.windows.same_span) to compare like for like."""
    first, last = local_dates(window)
    months = 0
    if arg.name == "this_month":
        months = 1
    elif first.day == 1 and (last + timedelta(days=1)).day == 1:
        months = (last.year - first.year) * 12 + last.month - first.month + 1
    length = {"today": 1, "this_week": 7}.get(arg.name, (last - first).days + 1)
    out: list[WindowArg] = []
    for k in range(1, count + 1):
        if months:
            start = _months_after(first, -k * months)
            end = _months_after(start, months)
        else:
            start = first - timedelta(days=k * length)
            end = start + timedelta(days=length)
        out.append(WindowArg(name="dates", first_date=start, last_date=end - timedelta(days=1)))
    return out


def _months_after(first: date, months: int) -> date:
    """The first of the month `months` calendar months after `first`'s (before, if < 0)."""
    year, month = divmod(first.year * 12 + first.month - 1 + months, 12)
    return date(year, month + 1, 1)


def period_end(name: WindowName, today: date) -> date | None:
    """The local date a running period ends before (today: tomorrow; this week: next
    Monday; this month: the first of the next), or None for a period that is not running."""
    if name == "today":
        return today + timedelta(days=1)
    if name == "this_week":
        return today + timedelta(days=7 - today.weekday())
    if name == "this_month":
        return _months_after(today.replace(day=1), 1)
    return None
