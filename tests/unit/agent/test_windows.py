"""The windows a route names, as tool windows (agent.windows.from_route), and the tools'
own calendar periods, which must read a week and a month as the router does."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from agent.windows import from_route
from router import WindowRef, resolve_window
from tools.windows import MAX_DAYS, WindowArg, calendar_days

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
