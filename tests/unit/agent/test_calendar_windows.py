"""Every window phrase of issue 18 (calendar months and years, seasons, weekday ranges, weeks
and months back), from the words of a message to UTC bounds, on the days a clock change makes
23 and 25 hours long: in Europe/Berlin (2026-03-29, 2026-10-25) and, for the seasons, which turn
round south of the equator, in Pacific/Chatham (2026-09-27 and 2026-04-05)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent.windows import follow_up, from_route
from router import route
from telemetry.windows import WindowError, local_day_start, southern
from tests.routing import HOME
from tools.windows import resolve

BERLIN, CHATHAM = "Europe/Berlin", "Pacific/Chatham"
# (zone, local today): each is the day of a clock change, 23 or 25 hours long.
SPRING = (BERLIN, date(2026, 3, 29))  # 23 h
AUTUMN = (BERLIN, date(2026, 10, 25))  # 25 h
MONDAY_AFTER_SPRING = (BERLIN, date(2026, 3, 30))
MONDAY_AFTER_AUTUMN = (BERLIN, date(2026, 10, 26))
CHATHAM_SPRING = (CHATHAM, date(2026, 9, 27))  # 23 h: 02:45 -> 03:45
CHATHAM_AUTUMN = (CHATHAM, date(2026, 4, 5))  # 25 h: 03:45 -> 02:45
NOW = None  # the window runs to now
HOUR = timedelta(hours=1)

CASES = [
    # Calendar months, with and without a year.
    (SPRING, "in November", date(2025, 11, 1), date(2025, 12, 1)),
    (SPRING, "November 2025", date(2025, 11, 1), date(2025, 12, 1)),
    (SPRING, "during nov 2025", date(2025, 11, 1), date(2025, 12, 1)),
    (SPRING, "last November", date(2025, 11, 1), date(2025, 12, 1)),
    (SPRING, "in March", date(2026, 3, 1), NOW),
    (SPRING, "last March", date(2025, 3, 1), date(2025, 4, 1)),
    (AUTUMN, "in November", date(2025, 11, 1), date(2025, 12, 1)),
    (AUTUMN, "this October", date(2026, 10, 1), NOW),
    (AUTUMN, "last October", date(2025, 10, 1), date(2025, 11, 1)),
    (MONDAY_AFTER_SPRING, "in March", date(2026, 3, 1), NOW),
    (MONDAY_AFTER_AUTUMN, "for October", date(2026, 10, 1), NOW),
    ((BERLIN, date(2026, 4, 2)), "in March", date(2026, 3, 1), date(2026, 4, 1)),
    ((BERLIN, date(2026, 11, 2)), "last October", date(2026, 10, 1), date(2026, 11, 1)),
    (SPRING, "since November", date(2025, 11, 1), NOW),
    # Years.
    (SPRING, "so far this year", date(2026, 1, 1), NOW),
    (AUTUMN, "year to date", date(2026, 1, 1), NOW),
    (AUTUMN, "since the start of the year", date(2026, 1, 1), NOW),
    (SPRING, "last year", date(2025, 1, 1), date(2026, 1, 1)),
    (AUTUMN, "in 2025", date(2025, 1, 1), date(2026, 1, 1)),
    # Seasons: three calendar months, the most recent that has begun (this) or ended (last).
    (SPRING, "last winter", date(2025, 12, 1), date(2026, 3, 1)),
    (SPRING, "this winter", date(2025, 12, 1), date(2026, 3, 1)),
    (SPRING, "this spring", date(2026, 3, 1), NOW),
    (SPRING, "last summer", date(2025, 6, 1), date(2025, 9, 1)),
    (AUTUMN, "in the autumn", date(2026, 9, 1), NOW),
    (AUTUMN, "last fall", date(2025, 9, 1), date(2025, 12, 1)),
    (AUTUMN, "last winter", date(2025, 12, 1), date(2026, 3, 1)),
    (CHATHAM_SPRING, "last winter", date(2026, 6, 1), date(2026, 9, 1)),
    (CHATHAM_SPRING, "this spring", date(2026, 9, 1), NOW),
    (CHATHAM_SPRING, "last summer", date(2025, 12, 1), date(2026, 3, 1)),
    (CHATHAM_AUTUMN, "this autumn", date(2026, 3, 1), NOW),
    (CHATHAM_AUTUMN, "last winter", date(2025, 6, 1), date(2025, 9, 1)),
    # Weekday ranges end on the most recent such last day, today included.
    (SPRING, "from Monday to Wednesday", date(2026, 3, 23), date(2026, 3, 26)),
    (SPRING, "between Friday and Sunday", date(2026, 3, 27), NOW),
    (AUTUMN, "from mon to wed", date(2026, 10, 19), date(2026, 10, 22)),
    (MONDAY_AFTER_SPRING, "from Friday to Sunday", date(2026, 3, 27), date(2026, 3, 30)),
    (MONDAY_AFTER_AUTUMN, "Friday through Sunday", date(2026, 10, 23), date(2026, 10, 26)),
    # Weeks and months back.
    (SPRING, "the week before last", date(2026, 3, 9), date(2026, 3, 16)),
    (AUTUMN, "2 weeks ago", date(2026, 10, 5), date(2026, 10, 12)),
    (MONDAY_AFTER_AUTUMN, "the week before last", date(2026, 10, 12), date(2026, 10, 19)),
    (SPRING, "the month before last", date(2026, 1, 1), date(2026, 2, 1)),
    (AUTUMN, "three months ago", date(2026, 7, 1), date(2026, 8, 1)),
    ((BERLIN, date(2026, 1, 10)), "2 months ago", date(2025, 11, 1), date(2025, 12, 1)),
]


def _nows(timezone: str, today: date) -> list[datetime]:
    """Instants on `today`: just after its first moment and just before its last, where a
    UTC date (or a day taken as 24 hours) is another day."""
    tz = ZoneInfo(timezone)
    start = local_day_start(today, tz)
    end = local_day_start(today + timedelta(days=1), tz)
    return [start + timedelta(minutes=30), end - timedelta(minutes=30)]


@pytest.mark.parametrize(
    ("day", "text", "first", "end"), [pytest.param(*c, id=f"{c[0][1]}-{c[1]}") for c in CASES]
)
def test_a_window_phrase_is_whole_local_days(
    day: tuple[str, date], text: str, first: date, end: date | None
) -> None:
    timezone, today = day
    tz = ZoneInfo(timezone)
    ref = route(f"how much did I use {text}?", HOME, pending_action=False).window
    assert ref is not None, text
    for now in _nows(timezone, today):
        assert now.astimezone(tz).date() == today
        arg = from_route(ref, today, southern=southern(timezone))
        window = resolve(arg, timezone=timezone, now=now)
        assert window.start == local_day_start(first, tz), (text, now)
        assert window.end == (now if end is None else local_day_start(end, tz)), (text, now)


def test_a_clock_change_is_inside_the_windows_it_tested() -> None:
    """The table above is about 23- and 25-hour days: some of its windows hold one."""

    def hours(timezone: str, d: date) -> float:
        tz = ZoneInfo(timezone)
        length = local_day_start(d + timedelta(days=1), tz) - local_day_start(d, tz)
        return length / timedelta(hours=1)

    assert hours(*SPRING) == 23
    assert hours(*AUTUMN) == 25
    assert hours(*CHATHAM_SPRING) == 23
    assert hours(*CHATHAM_AUTUMN) == 25
    held = {
        hours(zone, d)
        for (zone, _), _, first, end in CASES
        if end is not None
        for d in (first + timedelta(days=k) for k in range((end - first).days))
    }
    assert {23.0, 25.0} <= held


def test_seasons_turn_round_south_of_the_equator() -> None:
    assert southern(CHATHAM)
    assert southern("Australia/Brisbane")
    assert not southern(BERLIN)
    assert not southern("Etc/UTC")
    ref = route("how much did I use last summer?", HOME, pending_action=False).window
    today = date(2026, 12, 4)
    north, south = (from_route(ref, today, southern=s) for s in (False, True))
    assert (north.first_date, north.last_date) == (date(2026, 6, 1), date(2026, 8, 31))
    assert (south.first_date, south.last_date) == (date(2025, 12, 1), date(2026, 2, 28))


def test_a_year_still_to_come_is_refused_not_moved() -> None:
    ref = route("how much did I use in 2027?", HOME, pending_action=False).window
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    with pytest.raises(WindowError) as refused:
        resolve(from_route(ref, now.date()), timezone=BERLIN, now=now)
    assert refused.value.code == "invalid_range"


@pytest.mark.parametrize(
    ("previous", "text", "first", "last"),
    [
        # Whole calendar months before whole calendar months, not the same count of days.
        (
            (date(2025, 11, 1), date(2025, 11, 30)),
            "and the one before?",
            (2025, 10, 1),
            (2025, 10, 31),
        ),
        (
            (date(2025, 12, 1), date(2026, 2, 28)),
            "and the one before that?",
            (2025, 9, 1),
            (2025, 11, 30),
        ),
        (
            (date(2025, 1, 1), date(2025, 12, 31)),
            "and the year before?",
            (2024, 1, 1),
            (2024, 12, 31),
        ),
        ((date(2026, 3, 23), date(2026, 3, 29)), "the one before", (2026, 3, 16), (2026, 3, 22)),
        (
            (date(2026, 3, 27), date(2026, 3, 29)),
            "and the period before?",
            (2026, 3, 24),
            (2026, 3, 26),
        ),
    ],
)
def test_the_one_before_is_as_long_as_the_one_it_follows(
    previous: tuple[date, date], text: str, first: tuple[int, int, int], last: tuple[int, int, int]
) -> None:
    ref = route(text, HOME, pending_action=False).window
    arg = follow_up(ref, date(2026, 3, 29), ("dates", *previous))
    assert (arg.first_date, arg.last_date) == (date(*first), date(*last))


def test_a_month_name_alone_or_a_year_that_is_an_amount_is_no_window() -> None:
    for text in ("may I ask how much I used?", "is anything over 2000 watts?", "in 2000 w?"):
        assert route(text, HOME, pending_action=False).window is None, text
    assert route("in november 20th?", HOME, pending_action=False).window is not None
