"""The eval's own window bounds (evals/cases.window_bounds) against literal expectations: the
figures every case is judged by are only as right as the windows they are integrated over."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from evals.cases import DatasetError, window_bounds

# Friday 4 December 2026, 14:29 in Berlin (UTC+1).
NOW = datetime(2026, 12, 4, 13, 29, tzinfo=UTC)
BERLIN = "Europe/Berlin"


def _utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "start", "end"),
    [
        ("like:yesterday~today", _utc(2026, 12, 2, 23), _utc(2026, 12, 3, 13, 29)),
        # Monday 30 Nov to Friday 4 Dec, 14:29: Monday 23 to Friday 27 Nov, 14:29.
        ("like:last_week~this_week", _utc(2026, 11, 22, 23), _utc(2026, 11, 27, 13, 29)),
        ("like:month:-1~this_month", _utc(2026, 10, 31, 23), _utc(2026, 11, 4, 13, 29)),
        # October had 31 days and summer time until the 25th: 1 to 4 October, 14:29 CEST.
        ("like:month:-2~this_month", _utc(2026, 9, 30, 22), _utc(2026, 10, 4, 12, 29)),
    ],
)
def test_the_same_span_of_an_earlier_window(name: str, start: datetime, end: datetime) -> None:
    assert window_bounds(name, BERLIN, NOW) == (start, end)


def test_a_span_longer_than_the_earlier_window_is_all_of_it() -> None:
    # 31 December against November's 30 days: all of November.
    now = datetime(2026, 12, 31, 11, tzinfo=UTC)
    assert window_bounds("like:month:-1~this_month", BERLIN, now) == (
        _utc(2026, 10, 31, 23),
        _utc(2026, 11, 30, 23),
    )


@pytest.mark.parametrize(
    "name", ["like:yesterday", "like:today~yesterday", "like:last_week~last_3_days"]
)
def test_a_same_span_needs_an_earlier_window_and_one_running_to_now(name: str) -> None:
    with pytest.raises(DatasetError):
        window_bounds(name, BERLIN, NOW)
