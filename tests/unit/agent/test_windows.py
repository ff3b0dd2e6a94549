"""The windows a route names, as tool windows (agent.windows.from_route), and the tools'
own calendar periods, which must read a week and a month as the router does."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest

from agent.windows import from_route
from router import WindowRef, resolve_window
from tools.windows import MAX_DAYS, WindowArg, calendar_days, earlier, local_dates, resolve

WEDNESDAY = date(2026, 11, 25)


def _named(name: str) -> WindowArg:
    return WindowArg.model_validate({"name": name, "first_date": None, "last_date": None})


@pytest.mark.parametrize(
    ("ref", "window"),
    [
        pytest.param(None, _named("today"), id="none-is-today"),
        pytest.param(WindowRef("last_days", days=1), _named("today"), id="1-day"),
        pytest.param(WindowRef("last_days", days=7), _named("last_7_days"), id="7-days"),
        pytest.param(WindowRef("last_month"), _named("last_month"), id="last-month"),
        pytest.param(
            WindowRef("last_days", days=5),
            WindowArg(name="dates", first_date=date(2026, 11, 21), last_date=WEDNESDAY),
            id="5-days-as-dates",
        ),
        pytest.param(
            WindowRef("date", start=date(2026, 11, 20)),
            WindowArg(name="dates", first_date=date(2026, 11, 20), last_date=date(2026, 11, 20)),
            id="one-date",
        ),
    ],
)
def test_a_routes_window_as_a_tool_window(ref: WindowRef | None, window: WindowArg) -> None:
    assert from_route(ref, WEDNESDAY) == window


def test_a_long_range_is_cut_to_the_most_a_tool_may_ask() -> None:
    ref = WindowRef("since", start=date(2020, 1, 1))
    window = from_route(ref, WEDNESDAY)
    assert window.last_date == WEDNESDAY
    assert window.first_date == WEDNESDAY - timedelta(days=MAX_DAYS - 1)


@pytest.mark.parametrize("name", ["this_week", "last_week", "last_month"])
def test_the_tools_calendar_periods_are_the_routers(name: Any) -> None:
    # Every weekday, month ends and a year's turn.
    start = date(2025, 12, 20)
    for today in (start + timedelta(days=n) for n in range(80)):
        assert calendar_days(name, today) == resolve_window(WindowRef(name), today), today


def _dates(first: str, last: str) -> WindowArg:
    return WindowArg(
        name="dates", first_date=date.fromisoformat(first), last_date=date.fromisoformat(last)
    )


BERLIN = "Europe/Berlin"


@pytest.mark.parametrize(
    ("arg", "now", "periods"),
    [
        # The day after the 25-hour day: the day before is the 25-hour one, whole.
        pytest.param(_named("yesterday"), "2026-10-27T09:00:00+01:00",
                     [("2026-10-25", "2026-10-25"), ("2026-10-24", "2026-10-24")],
                     id="days-across-25-hours"),
        pytest.param(_named("today"), "2026-03-30T09:00:00+02:00",
                     [("2026-03-29", "2026-03-29"), ("2026-03-28", "2026-03-28")],
                     id="today-after-23-hours"),
        pytest.param(_named("this_week"), "2026-11-25T09:00:00+01:00",
                     [("2026-11-16", "2026-11-22"), ("2026-11-09", "2026-11-15")],
                     id="this-week-is-weeks"),
        pytest.param(_named("this_month"), "2026-03-03T09:00:00+01:00",
                     [("2026-02-01", "2026-02-28"), ("2026-01-01", "2026-01-31")],
                     id="this-month-is-months"),
        pytest.param(_dates("2026-01-01", "2026-03-31"), "2026-11-25T09:00:00+01:00",
                     [("2025-10-01", "2025-12-31"), ("2025-07-01", "2025-09-30")],
                     id="whole-months"),
        pytest.param(_dates("2026-11-10", "2026-11-12"), "2026-11-25T09:00:00+01:00",
                     [("2026-11-07", "2026-11-09"), ("2026-11-04", "2026-11-06")],
                     id="as-many-days"),
    ],
)  # fmt: skip
def test_the_periods_before_a_window_are_like_it(
    arg: WindowArg, now: str, periods: list[tuple[str, str]]
) -> None:
    at = datetime.fromisoformat(now)
    window = resolve(arg, timezone=BERLIN, now=at)
    assert earlier(arg, window, len(periods)) == [_dates(a, b) for a, b in periods]
    # Each is whole local days in the zone: 23- and 25-hour days included.
    for p in earlier(arg, window, len(periods)):
        bounds = resolve(p, timezone=BERLIN, now=at)
        assert local_dates(bounds) == (p.first_date, p.last_date)
