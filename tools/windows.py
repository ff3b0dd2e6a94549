"""The windows a tool may ask about: names, or whole local dates the server checks. The
model never supplies an instant; telemetry.windows turns these into UTC bounds in the
household's timezone."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router.windows import WindowRef, resolve_window
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
# Calendar periods: the router's own reading of them, so a tool and a route agree.
_CALENDAR = {kind: WindowRef(kind) for kind in ("this_week", "last_week", "last_month")}
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
        first, until = resolve_window(_CALENDAR[arg.name], today)
        end = until or today + timedelta(days=1)  # to now: the telemetry layer clips it
    window = windows.resolve(
        None, timezone=timezone, now=now, start=first.isoformat(), end=end.isoformat()
    )
    return Window(arg.name, window.start, window.end, window.timezone)


_ROUTE_NAMES: dict[tuple[str, int | None], WindowName] = {
    ("today", None): "today",
    ("yesterday", None): "yesterday",
    ("last_days", 1): "today",
    ("last_days", 3): "last_3_days",
    ("last_days", 7): "last_7_days",
    ("last_days", 30): "last_30_days",
    ("this_week", None): "this_week",
    ("last_week", None): "last_week",
    ("this_month", None): "this_month",
    ("last_month", None): "last_month",
}


def from_route(ref: WindowRef | None, today: date) -> WindowArg:
    """The tool window for a window the router read from a message (None: today). A named
    period keeps its name; anything else becomes whole local dates."""
    if ref is None:
        return WindowArg(name="today", first_date=None, last_date=None)
    key = (ref.kind, ref.days if ref.kind == "last_days" else None)
    if key in _ROUTE_NAMES:
        return WindowArg(name=_ROUTE_NAMES[key], first_date=None, last_date=None)
    first, until = resolve_window(ref, today)
    last = (until or today + timedelta(days=1)) - timedelta(days=1)
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    return WindowArg(name="dates", first_date=first, last_date=max(first, last))
