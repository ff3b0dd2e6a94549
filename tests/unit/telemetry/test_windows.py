"""Analytics windows: named and explicit windows, local days and series edges, checked against
UTC instants worked out by hand from each zone's offsets and DST rules."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from telemetry.windows import (
    WINDOW_NAMES,
    Step,
    Window,
    WindowError,
    local_day_start,
    resolve,
    series_edges,
    zone,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def named(name: str, tz: str, now: datetime) -> tuple[datetime, datetime]:
    window = resolve(name, timezone=tz, now=now)
    assert window.name == name
    assert window.timezone == tz
    return window.start, window.end


def custom(start: str, end: str, *, tz: str = "Europe/Berlin", now: datetime) -> Window:
    return resolve(None, timezone=tz, now=now, start=start, end=end)


def hourly(first: datetime, count: int) -> list[datetime]:
    return [first + hours(i) for i in range(count)]


# Wednesday 2024-01-17, 11:30 CET (UTC+1); today began at 2024-01-16 23:00 UTC.
BERLIN_WINTER_NOW = utc(2024, 1, 17, 10, 30)


@pytest.mark.parametrize(
    ("name", "start", "end"),
    [
        pytest.param("day", utc(2024, 1, 16, 23), BERLIN_WINTER_NOW, id="day"),
        pytest.param("yesterday", utc(2024, 1, 15, 23), utc(2024, 1, 16, 23), id="yesterday"),
        pytest.param("3days", utc(2024, 1, 13, 23), utc(2024, 1, 16, 23), id="3days"),
        pytest.param("week", utc(2024, 1, 9, 23), utc(2024, 1, 16, 23), id="week"),
        pytest.param("month", utc(2023, 12, 31, 23), BERLIN_WINTER_NOW, id="month"),
        pytest.param("30days", utc(2023, 12, 17, 23), utc(2024, 1, 16, 23), id="30days"),
    ],
)
def test_named_windows_on_an_ordinary_berlin_day(name: str, start: datetime, end: datetime) -> None:
    assert named(name, "Europe/Berlin", BERLIN_WINTER_NOW) == (start, end)


def test_every_window_name_is_covered() -> None:
    assert WINDOW_NAMES == ("day", "yesterday", "3days", "week", "month", "30days")


@pytest.mark.parametrize(
    ("tz", "now", "start", "end", "length"),
    [
        # Clocks went 02:00 CET -> 03:00 CEST at 01:00 UTC on 2024-03-31.
        pytest.param(
            "Europe/Berlin",
            utc(2024, 4, 1, 8),
            utc(2024, 3, 30, 23),
            utc(2024, 3, 31, 22),
            hours(23),
            id="berlin-spring",
        ),
        # Clocks went 03:00 CEST -> 02:00 CET at 01:00 UTC on 2024-10-27.
        pytest.param(
            "Europe/Berlin",
            utc(2024, 10, 28, 8),
            utc(2024, 10, 26, 22),
            utc(2024, 10, 27, 23),
            hours(25),
            id="berlin-autumn",
        ),
        # 02:00 EST -> 03:00 EDT on 2024-03-10; midnight is 05:00 UTC before, 04:00 UTC after.
        pytest.param(
            "America/New_York",
            utc(2024, 3, 11, 15),
            utc(2024, 3, 10, 5),
            utc(2024, 3, 11, 4),
            hours(23),
            id="new-york-spring",
        ),
        # 02:00 EDT -> 01:00 EST on 2024-11-03.
        pytest.param(
            "America/New_York",
            utc(2024, 11, 4, 15),
            utc(2024, 11, 3, 4),
            utc(2024, 11, 4, 5),
            hours(25),
            id="new-york-autumn",
        ),
        # Chatham: 03:45 +13:45 -> 02:45 +12:45 on 2024-04-07 (14:00 UTC on the 6th).
        # Midnight +13:45 is 10:15 UTC the day before; midnight +12:45 is 11:15 UTC.
        pytest.param(
            "Pacific/Chatham",
            utc(2024, 4, 8),
            utc(2024, 4, 6, 10, 15),
            utc(2024, 4, 7, 11, 15),
            hours(25),
            id="chatham-autumn",
        ),
        # Chatham: 02:45 +12:45 -> 03:45 +13:45 on 2024-09-29 (14:00 UTC on the 28th).
        pytest.param(
            "Pacific/Chatham",
            utc(2024, 9, 30),
            utc(2024, 9, 28, 11, 15),
            utc(2024, 9, 29, 10, 15),
            hours(23),
            id="chatham-spring",
        ),
        # Lord Howe: 02:00 +11 -> 01:30 +10:30 on 2024-04-07, a 24.5-hour day.
        pytest.param(
            "Australia/Lord_Howe",
            utc(2024, 4, 8, 2),
            utc(2024, 4, 6, 13),
            utc(2024, 4, 7, 13, 30),
            hours(24.5),
            id="lord-howe-autumn",
        ),
        # Lord Howe: 02:00 +10:30 -> 02:30 +11 on 2024-10-06, a 23.5-hour day.
        pytest.param(
            "Australia/Lord_Howe",
            utc(2024, 10, 7, 2),
            utc(2024, 10, 5, 13, 30),
            utc(2024, 10, 6, 13),
            hours(23.5),
            id="lord-howe-spring",
        ),
    ],
)
def test_yesterday_on_a_dst_change_day_has_its_real_length(
    tz: str, now: datetime, start: datetime, end: datetime, length: timedelta
) -> None:
    assert named("yesterday", tz, now) == (start, end)
    assert end - start == length


def test_today_on_the_spring_dst_day_has_an_hour_less_than_the_wall_clock_shows() -> None:
    # 14:00 CEST on 2024-03-31 is 12:00 UTC; the day began at 00:00 CET = 23:00 UTC.
    start, end = named("day", "Europe/Berlin", utc(2024, 3, 31, 12))
    assert (start, end) == (utc(2024, 3, 30, 23), utc(2024, 3, 31, 12))
    assert end - start == hours(13)


@pytest.mark.parametrize(
    ("tz", "name", "start", "end"),
    [
        # Kathmandu is UTC+05:45 all year: local midnight is 18:15 UTC the day before.
        # now = 2024-06-15 06:00 UTC = 11:45 local.
        pytest.param(
            "Asia/Kathmandu", "day", utc(2024, 6, 14, 18, 15), utc(2024, 6, 15, 6), id="ktm-day"
        ),
        pytest.param(
            "Asia/Kathmandu",
            "yesterday",
            utc(2024, 6, 13, 18, 15),
            utc(2024, 6, 14, 18, 15),
            id="ktm-yesterday",
        ),
        pytest.param(
            "Asia/Kathmandu",
            "week",
            utc(2024, 6, 7, 18, 15),
            utc(2024, 6, 14, 18, 15),
            id="ktm-week",
        ),
        pytest.param(
            "Asia/Kathmandu", "month", utc(2024, 5, 31, 18, 15), utc(2024, 6, 15, 6), id="ktm-month"
        ),
        # Kolkata is UTC+05:30.
        pytest.param(
            "Asia/Kolkata", "day", utc(2024, 6, 14, 18, 30), utc(2024, 6, 15, 6), id="kolkata-day"
        ),
        pytest.param(
            "Asia/Kolkata",
            "3days",
            utc(2024, 6, 11, 18, 30),
            utc(2024, 6, 14, 18, 30),
            id="kolkata-3days",
        ),
        # Chatham in June is on standard time, +12:45: 2024-06-15 06:00 UTC is 18:45 local.
        pytest.param(
            "Pacific/Chatham",
            "day",
            utc(2024, 6, 14, 11, 15),
            utc(2024, 6, 15, 6),
            id="chatham-day",
        ),
        # Lord Howe in June is on standard time, +10:30: 06:00 UTC is 16:30 local.
        pytest.param(
            "Australia/Lord_Howe",
            "day",
            utc(2024, 6, 14, 13, 30),
            utc(2024, 6, 15, 6),
            id="lord-howe-day",
        ),
    ],
)
def test_named_windows_in_zones_with_odd_offsets(
    tz: str, name: str, start: datetime, end: datetime
) -> None:
    assert named(name, tz, utc(2024, 6, 15, 6)) == (start, end)


@pytest.mark.parametrize(
    ("tz", "now", "start"),
    [
        # 00:05 CET on 2024-03-01 is 23:05 UTC on the (leap) 29th.
        pytest.param(
            "Europe/Berlin", utc(2024, 2, 29, 23, 5), utc(2024, 2, 29, 23), id="berlin-winter"
        ),
        # 00:01 CEST on 2024-04-01: the month began after the spring change, at UTC+2.
        pytest.param(
            "Europe/Berlin", utc(2024, 3, 31, 22, 1), utc(2024, 3, 31, 22), id="berlin-summer"
        ),
        # 00:01 EST on 2024-12-01.
        pytest.param(
            "America/New_York", utc(2024, 12, 1, 5, 1), utc(2024, 12, 1, 5), id="new-york"
        ),
        # 00:10 +05:45 on 2024-07-01.
        pytest.param(
            "Asia/Kathmandu", utc(2024, 6, 30, 18, 25), utc(2024, 6, 30, 18, 15), id="kathmandu"
        ),
    ],
)
def test_month_just_after_midnight_on_the_first(tz: str, now: datetime, start: datetime) -> None:
    assert named("month", tz, now) == (start, now)


def test_month_started_in_summer_time_and_runs_into_winter_time() -> None:
    # 2024-11-05 in Berlin (CET); November began at 00:00 CET = 2024-10-31 23:00 UTC.
    assert named("month", "Europe/Berlin", utc(2024, 11, 5, 9))[0] == utc(2024, 10, 31, 23)


@pytest.mark.parametrize(
    ("name", "tz", "now", "start", "end", "length"),
    [
        # Tuesday 2024-04-02: the week is 26 March to 1 April, across the spring change.
        pytest.param(
            "week",
            "Europe/Berlin",
            utc(2024, 4, 2, 10),
            utc(2024, 3, 25, 23),
            utc(2024, 4, 1, 22),
            hours(7 * 24 - 1),
            id="week-berlin-spring",
        ),
        # 2024-11-10: the 30 days are 11 October to 9 November, across the autumn change.
        pytest.param(
            "30days",
            "Europe/Berlin",
            utc(2024, 11, 10, 12),
            utc(2024, 10, 10, 22),
            utc(2024, 11, 9, 23),
            hours(30 * 24 + 1),
            id="30days-berlin-autumn",
        ),
        # 2024-03-12: the week is 5 to 11 March, across 10 March (EST -> EDT).
        pytest.param(
            "week",
            "America/New_York",
            utc(2024, 3, 12, 15),
            utc(2024, 3, 5, 5),
            utc(2024, 3, 12, 4),
            hours(7 * 24 - 1),
            id="week-new-york-spring",
        ),
        # 2024-04-01: the 3 days are 29 to 31 March, the last one 23 hours.
        pytest.param(
            "3days",
            "Europe/Berlin",
            utc(2024, 4, 1, 8),
            utc(2024, 3, 28, 23),
            utc(2024, 3, 31, 22),
            hours(3 * 24 - 1),
            id="3days-berlin-spring",
        ),
        # 2024-10-10 on Lord Howe: the week is 3 to 9 October, across the half-hour change.
        pytest.param(
            "week",
            "Australia/Lord_Howe",
            utc(2024, 10, 10, 2),
            utc(2024, 10, 2, 13, 30),
            utc(2024, 10, 9, 13),
            hours(7 * 24 - 0.5),
            id="week-lord-howe-spring",
        ),
    ],
)
def test_whole_day_windows_across_a_dst_change_have_their_real_duration(
    name: str,
    tz: str,
    now: datetime,
    start: datetime,
    end: datetime,
    length: timedelta,
) -> None:
    assert named(name, tz, now) == (start, end)
    assert end - start == length


@pytest.mark.parametrize(
    ("tz", "day", "start"),
    [
        pytest.param("Europe/Berlin", date(2024, 1, 17), utc(2024, 1, 16, 23), id="berlin"),
        # Clocks going from 00:00 to 01:00 skip midnight: the day starts at 01:00 new time,
        # Santiago 2024-09-08 at 00:00 -04 (04:00 UTC), Beirut 2020-03-29 at 00:00 +02.
        pytest.param("America/Santiago", date(2024, 9, 8), utc(2024, 9, 8, 4), id="santiago-gap"),
        pytest.param("Asia/Beirut", date(2020, 3, 29), utc(2020, 3, 28, 22), id="beirut-gap"),
        # Santiago 2024-04-07: 00:00 -03 -> 23:00 -04 on the 6th, so the 7th starts at the
        # only 00:00 left, the one at -04.
        pytest.param("America/Santiago", date(2024, 4, 7), utc(2024, 4, 7, 4), id="santiago-back"),
        # Toronto 1919-03-30 went from 23:30 EST to 00:30 EDT: midnight is inside the gap and
        # the 31st starts at the gap's end, 04:30 UTC.
        pytest.param(
            "America/Toronto", date(1919, 3, 31), utc(1919, 3, 31, 4, 30), id="toronto-mid-gap"
        ),
        # Goose Bay 2009-11-01 turned 00:01 ADT back to 23:01 AST: the 1st first starts at
        # 00:00 ADT (03:00 UTC), even though 00:00 comes round again an hour later.
        pytest.param(
            "America/Goose_Bay", date(2009, 11, 1), utc(2009, 11, 1, 3), id="goose-bay-twice"
        ),
        # Samoa skipped 2011-12-30: it starts where the 31st does (00:00 +14).
        pytest.param("Pacific/Apia", date(2011, 12, 30), utc(2011, 12, 30, 10), id="apia-skipped"),
        pytest.param("Pacific/Apia", date(2011, 12, 31), utc(2011, 12, 30, 10), id="apia-after"),
    ],
)
def test_a_local_day_starts_at_the_first_instant_of_its_date(
    tz: str, day: date, start: datetime
) -> None:
    assert local_day_start(day, ZoneInfo(tz)) == start


def test_a_day_whose_midnight_is_skipped_is_23_hours() -> None:
    # Santiago 2024-09-08 runs from 01:00 -03 (04:00 UTC) to 00:00 -03 on the 9th (03:00 UTC).
    now = utc(2024, 9, 9, 15)
    assert named("yesterday", "America/Santiago", now) == (utc(2024, 9, 8, 4), utc(2024, 9, 9, 3))


def test_repeated_minutes_across_midnight_belong_to_the_day_already_begun() -> None:
    # Goose Bay 03:30 UTC on 2009-11-01 reads 23:30 AST on 31 October, but 1 November began
    # at 03:00 UTC: "today" is the 1st, not a 27-hour-old 31st.
    window = resolve("day", timezone="America/Goose_Bay", now=utc(2009, 11, 1, 3, 30))
    assert (window.start, window.end) == (utc(2009, 11, 1, 3), utc(2009, 11, 1, 3, 30))
    assert window.local_days() == [date(2009, 11, 1)]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # Offsets of different zones mix freely; only the instants matter.
        pytest.param(
            "2024-03-01T00:00:00+01:00",
            "2024-03-02T06:30:00+05:30",
            (utc(2024, 2, 29, 23), utc(2024, 3, 2, 1)),
            id="offsets",
        ),
        pytest.param(
            "2024-03-01T12:00:00Z",
            "2024-03-01T13:15:00Z",
            (utc(2024, 3, 1, 12), utc(2024, 3, 1, 13, 15)),
            id="z",
        ),
        pytest.param(
            "2024-03-01T12:00:00.250000+00:00",
            "2024-03-01T13:00:00-02:00",
            (utc(2024, 3, 1, 12) + timedelta(milliseconds=250), utc(2024, 3, 1, 15)),
            id="fraction-and-negative-offset",
        ),
        # A plain date is local midnight in the window's zone: CET, then CEST.
        pytest.param(
            "2024-03-30",
            "2024-04-01",
            (utc(2024, 3, 29, 23), utc(2024, 3, 31, 22)),
            id="plain-dates-across-dst",
        ),
        pytest.param(
            "2024-03-30",
            "2024-03-30T18:00:00Z",
            (utc(2024, 3, 29, 23), utc(2024, 3, 30, 18)),
            id="date-and-datetime",
        ),
    ],
)
def test_explicit_windows(start: str, end: str, expected: tuple[datetime, datetime]) -> None:
    window = custom(start, end, now=utc(2024, 6, 1))
    assert (window.start, window.end) == expected
    assert window.name == "custom"
    assert window.timezone == "Europe/Berlin"


@pytest.mark.parametrize(
    ("tz", "day", "start"),
    [
        pytest.param("Asia/Kathmandu", "2024-06-01", utc(2024, 5, 31, 18, 15), id="kathmandu"),
        pytest.param("Pacific/Chatham", "2024-06-01", utc(2024, 5, 31, 11, 15), id="chatham"),
        pytest.param("America/Santiago", "2024-09-08", utc(2024, 9, 8, 4), id="santiago-gap"),
    ],
)
def test_a_plain_date_means_the_start_of_that_local_day(tz: str, day: str, start: datetime) -> None:
    window = custom(day, "2024-10-01T00:00:00Z", tz=tz, now=utc(2024, 12, 1))
    assert window.start == start


def test_an_end_after_now_is_clipped_to_now() -> None:
    now = utc(2024, 6, 1, 12, 34)
    window = custom("2024-06-01", "2024-06-03", now=now)
    assert (window.start, window.end) == (utc(2024, 5, 31, 22), now)


def test_now_in_another_offset_is_the_same_instant() -> None:
    now = datetime.fromisoformat("2024-06-01T14:34:00+02:00")
    window = custom("2024-06-01", "2024-06-03", now=now)
    assert window.end == utc(2024, 6, 1, 12, 34)
    assert window.end.tzinfo is UTC


@pytest.mark.parametrize(
    ("start", "end", "now", "served"),
    [
        # 2024-01-01 -> 2025-02-04 is exactly 400 days, all of them CET.
        pytest.param(
            "2024-01-01",
            "2025-02-04",
            utc(2025, 6, 1),
            (utc(2023, 12, 31, 23), utc(2025, 2, 3, 23)),
            id="400-days",
        ),
        # 400 local days from CEST to CET: 400 x 24 hours + 1 in absolute time.
        pytest.param(
            "2023-10-01",
            "2024-11-04",
            utc(2025, 6, 1),
            (utc(2023, 9, 30, 22), utc(2024, 11, 3, 23)),
            id="400-local-days-across-dst",
        ),
        # Clipped to now first, then measured: what is served is five months.
        pytest.param(
            "2024-01-01",
            "2030-01-01",
            utc(2024, 6, 1),
            (utc(2023, 12, 31, 23), utc(2024, 6, 1)),
            id="clipped-long-request",
        ),
    ],
)
def test_an_explicit_window_may_span_400_days(
    start: str, end: str, now: datetime, served: tuple[datetime, datetime]
) -> None:
    window = custom(start, end, now=now)
    assert (window.start, window.end) == served


# Each case is the error code, then resolve's arguments (name, timezone, start, end), as of
# 2025-06-01 12:00 UTC.
ERRORS = [
    pytest.param("invalid_window", ("fortnight", "Europe/Berlin", None, None), id="unknown-name"),
    pytest.param("invalid_window", ("custom", "Europe/Berlin", None, None), id="custom-by-name"),
    pytest.param("invalid_window", ("", "Europe/Berlin", None, None), id="empty-name"),
    pytest.param("invalid_window", (None, "Europe/Berlin", None, None), id="nothing"),
    pytest.param(
        "invalid_window",
        ("day", "Europe/Berlin", "2024-01-01", "2024-01-02"),
        id="name-and-range",
    ),
    pytest.param("invalid_timezone", ("day", "Mars/Base", None, None), id="made-up-zone"),
    pytest.param("invalid_timezone", ("day", "", None, None), id="empty-zone"),
    pytest.param("invalid_timezone", ("day", "europe/berlin", None, None), id="wrong-case"),
    pytest.param("invalid_timezone", ("day", "Europe/Berlin/", None, None), id="trailing-slash"),
    pytest.param("invalid_timezone", ("day", "America", None, None), id="directory"),
    pytest.param("invalid_timezone", ("day", "localtime", None, None), id="localtime"),
    pytest.param("invalid_timezone", ("day", "posixrules", None, None), id="posixrules"),
    pytest.param("invalid_timezone", ("day", "Factory", None, None), id="factory"),
    pytest.param("invalid_timezone", ("day", "posix/Europe/Berlin", None, None), id="posix"),
    pytest.param("invalid_timezone", ("day", "right/UTC", None, None), id="right"),
    pytest.param("invalid_timezone", ("day", "zone.tab", None, None), id="data-file"),
    pytest.param("invalid_timezone", ("day", "leapseconds", None, None), id="leapseconds"),
    pytest.param(
        "invalid_timezone", ("day", "/usr/share/zoneinfo/UTC", None, None), id="absolute-path"
    ),
    pytest.param("invalid_timezone", ("day", "../zoneinfo/UTC", None, None), id="relative-path"),
    pytest.param("invalid_range", (None, "Europe/Berlin", "2024-01-01", None), id="start-only"),
    pytest.param("invalid_range", (None, "Europe/Berlin", None, "2024-01-01"), id="end-only"),
    pytest.param(
        "invalid_range", (None, "Europe/Berlin", "last tuesday", "2024-01-02"), id="not-a-date"
    ),
    pytest.param(
        "invalid_range", (None, "Europe/Berlin", "2024-02-30", "2024-03-02"), id="no-such-date"
    ),
    pytest.param(
        "invalid_range", (None, "Europe/Berlin", "2024-01-02", "2024-01-02"), id="empty-range"
    ),
    pytest.param(
        "invalid_range", (None, "Europe/Berlin", "2024-01-03", "2024-01-02"), id="backwards"
    ),
    pytest.param(
        "invalid_range",
        (None, "Europe/Berlin", "2025-06-01T12:00:00Z", "2025-06-02T00:00:00Z"),
        id="starts-at-now",
    ),
    pytest.param(
        "invalid_range", (None, "Europe/Berlin", "2025-07-01", "2025-07-02"), id="in-the-future"
    ),
    # 2024-01-01 + 400 days is 2025-02-04; one day more is refused.
    pytest.param(
        "invalid_range", (None, "Europe/Berlin", "2024-01-01", "2025-02-05"), id="401-days"
    ),
    pytest.param(
        "invalid_range", (None, "Europe/Berlin", "0001-01-01", "2024-01-02"), id="out-of-range"
    ),
]


@pytest.mark.parametrize(("code", "arguments"), ERRORS)
def test_each_bad_request_has_its_code(
    code: str, arguments: tuple[str | None, str, str | None, str | None]
) -> None:
    name, tz, start, end = arguments
    with pytest.raises(WindowError) as caught:
        resolve(name, timezone=tz, now=utc(2025, 6, 1, 12), start=start, end=end)
    assert caught.value.code == code
    assert caught.value.message == str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "start", ["2024-03-01T00:00:00", "2024-03-01 00:00", "20240301T000000", "20240301"]
)
def test_a_bound_without_an_offset_is_refused_with_a_hint(start: str) -> None:
    with pytest.raises(WindowError, match="add one") as caught:
        custom(start, "2024-03-02T00:00:00Z", now=utc(2024, 6, 1))
    assert caught.value.code == "invalid_range"


def test_a_huge_bad_value_is_not_echoed_whole() -> None:
    with pytest.raises(WindowError) as caught:
        resolve("x" * 10_000, timezone="Europe/Berlin", now=utc(2024, 6, 1))
    assert len(caught.value.message) < 300


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware") as caught:
        resolve("day", timezone="Europe/Berlin", now=datetime(2024, 6, 1, 12))
    assert not isinstance(caught.value, WindowError)


@pytest.mark.parametrize(
    "name", ["Europe/Berlin", "UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+5", "US/Eastern"]
)
def test_zone_accepts_iana_names_and_links(name: str) -> None:
    assert zone(name).key == name


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        # 13:00 CET on 30 March to 02:30 CEST on 1 April.
        pytest.param(
            utc(2024, 3, 30, 12),
            utc(2024, 4, 1, 0, 30),
            [date(2024, 3, 30), date(2024, 3, 31), date(2024, 4, 1)],
            id="across-two-midnights",
        ),
        # Exactly 16 and 17 January, local: the end is exclusive.
        pytest.param(
            utc(2024, 1, 15, 23),
            utc(2024, 1, 17, 23),
            [date(2024, 1, 16), date(2024, 1, 17)],
            id="whole-days",
        ),
        pytest.param(
            utc(2024, 1, 15, 22, 59),
            utc(2024, 1, 15, 23, 1),
            [date(2024, 1, 15), date(2024, 1, 16)],
            id="two-minutes-over-midnight",
        ),
        pytest.param(utc(2024, 1, 15, 12), utc(2024, 1, 15, 12), [], id="empty"),
    ],
)
def test_local_days_are_the_dates_a_window_touches(
    start: datetime, end: datetime, days: list[date]
) -> None:
    assert Window("custom", start, end, "Europe/Berlin").local_days() == days


def test_local_days_in_kathmandu() -> None:
    # 23:45 to 00:15 local (+05:45).
    window = Window("custom", utc(2024, 6, 14, 18), utc(2024, 6, 14, 18, 30), "Asia/Kathmandu")
    assert window.local_days() == [date(2024, 6, 14), date(2024, 6, 15)]


def test_a_date_the_zone_skipped_is_not_a_local_day() -> None:
    # Samoa went from 29 December 2011 straight to the 31st.
    window = Window("custom", utc(2011, 12, 29, 10), utc(2011, 12, 31, 10), "Pacific/Apia")
    assert window.local_days() == [date(2011, 12, 29), date(2011, 12, 31)]


def test_a_named_window_touches_exactly_its_days() -> None:
    window = resolve("week", timezone="Europe/Berlin", now=utc(2024, 4, 2, 10))
    assert window.local_days() == [date(2024, 3, d) for d in range(26, 32)] + [date(2024, 4, 1)]


@pytest.mark.parametrize(
    ("tz", "start", "end", "step", "edges"),
    [
        # 31 March 2024 in Berlin: 23 hours, no bucket for the skipped 02:00 CET.
        pytest.param(
            "Europe/Berlin",
            utc(2024, 3, 30, 23),
            utc(2024, 3, 31, 22),
            "1h",
            hourly(utc(2024, 3, 30, 23), 24),
            id="berlin-spring-1h",
        ),
        # 27 October 2024 in Berlin: 25 hours, 02:00 twice (00:00 and 01:00 UTC).
        pytest.param(
            "Europe/Berlin",
            utc(2024, 10, 26, 22),
            utc(2024, 10, 27, 23),
            "1h",
            hourly(utc(2024, 10, 26, 22), 26),
            id="berlin-autumn-1h",
        ),
        pytest.param(
            "America/New_York",
            utc(2024, 3, 10, 5),
            utc(2024, 3, 11, 4),
            "1h",
            hourly(utc(2024, 3, 10, 5), 24),
            id="new-york-spring-1h",
        ),
        pytest.param(
            "America/New_York",
            utc(2024, 11, 3, 4),
            utc(2024, 11, 4, 5),
            "1h",
            hourly(utc(2024, 11, 3, 4), 26),
            id="new-york-autumn-1h",
        ),
        # A week across the spring change: a local midnight is 23:00 UTC before, 22:00 after.
        pytest.param(
            "Europe/Berlin",
            utc(2024, 3, 25, 23),
            utc(2024, 4, 1, 22),
            "1d",
            [utc(2024, 3, d, 23) for d in range(25, 31)]
            # 1 April and 2 April (the window's end) start at 00:00 CEST.
            + [utc(2024, 3, 31, 22), utc(2024, 4, 1, 22)],
            id="berlin-week-1d",
        ),
        # Kathmandu hours start at :15 UTC; the last bucket is the 45 minutes up to now.
        pytest.param(
            "Asia/Kathmandu",
            utc(2024, 6, 14, 18, 15),
            utc(2024, 6, 15, 6),
            "1h",
            [*hourly(utc(2024, 6, 14, 18, 15), 12), utc(2024, 6, 15, 6)],
            id="kathmandu-1h",
        ),
        # Kathmandu quarter hours are UTC quarter hours (05:45 + 00:15 k).
        pytest.param(
            "Asia/Kathmandu",
            utc(2024, 6, 15, 0, 5),
            utc(2024, 6, 15, 1),
            "15m",
            [utc(2024, 6, 15, 0, m) for m in (5, 15, 30, 45)] + [utc(2024, 6, 15, 1)],
            id="kathmandu-15m",
        ),
        pytest.param(
            "Asia/Kathmandu",
            utc(2024, 6, 12, 6),
            utc(2024, 6, 15, 6),
            "1d",
            [
                utc(2024, 6, 12, 6),
                *(utc(2024, 6, d, 18, 15) for d in (12, 13, 14)),
                utc(2024, 6, 15, 6),
            ],
            id="kathmandu-1d",
        ),
        # Chatham's DST shift is a whole hour, so its hours stay on :15 UTC: 23 and 25 of them.
        pytest.param(
            "Pacific/Chatham",
            utc(2024, 9, 28, 11, 15),
            utc(2024, 9, 29, 10, 15),
            "1h",
            hourly(utc(2024, 9, 28, 11, 15), 24),
            id="chatham-spring-1h",
        ),
        pytest.param(
            "Pacific/Chatham",
            utc(2024, 4, 6, 10, 15),
            utc(2024, 4, 7, 11, 15),
            "1h",
            hourly(utc(2024, 4, 6, 10, 15), 26),
            id="chatham-autumn-1h",
        ),
        # Lord Howe 6 October 2024 (23.5 h): 02:00 +10:30 never happens, so the 01:00 bucket
        # runs 90 minutes to 03:00 +11 (16:00 UTC); from then on hours start on the hour UTC.
        pytest.param(
            "Australia/Lord_Howe",
            utc(2024, 10, 5, 13, 30),
            utc(2024, 10, 6, 13),
            "1h",
            [utc(2024, 10, 5, 13, 30), utc(2024, 10, 5, 14, 30), *hourly(utc(2024, 10, 5, 16), 22)],
            id="lord-howe-spring-1h",
        ),
        # Lord Howe 7 April 2024 (24.5 h): 01:30-02:00 comes twice, so the 01:00 bucket runs
        # 90 minutes from 01:00 +11 (14:00 UTC) to 02:00 +10:30 (15:30 UTC).
        pytest.param(
            "Australia/Lord_Howe",
            utc(2024, 4, 6, 13),
            utc(2024, 4, 7, 13, 30),
            "1h",
            [utc(2024, 4, 6, 13), utc(2024, 4, 6, 14), *hourly(utc(2024, 4, 6, 15, 30), 23)],
            id="lord-howe-autumn-1h",
        ),
        # Goose Bay 1 November 2009: the day starts at 03:00 UTC; 23:00 AST on the 31st never
        # reads (the repeat starts at 23:01), 00:00 reads twice.
        pytest.param(
            "America/Goose_Bay",
            utc(2009, 11, 1, 1, 30),
            utc(2009, 11, 1, 5, 30),
            "1h",
            [utc(2009, 11, 1, 1, 30), *hourly(utc(2009, 11, 1, 2), 4), utc(2009, 11, 1, 5, 30)],
            id="goose-bay-1h",
        ),
        pytest.param(
            "America/Goose_Bay",
            utc(2009, 11, 1, 1, 30),
            utc(2009, 11, 1, 5, 30),
            "1d",
            [utc(2009, 11, 1, 1, 30), utc(2009, 11, 1, 3), utc(2009, 11, 1, 5, 30)],
            id="goose-bay-1d",
        ),
        # Toronto 30/31 March 1919 (23:30 EST -> 00:30 EDT): the day start at 04:30 UTC is an
        # edge even though it is not on a whole local hour, so hours nest in days.
        pytest.param(
            "America/Toronto",
            utc(1919, 3, 31, 3),
            utc(1919, 3, 31, 7),
            "1h",
            [
                utc(1919, 3, 31, 3),
                utc(1919, 3, 31, 4),
                utc(1919, 3, 31, 4, 30),
                *hourly(utc(1919, 3, 31, 5), 3),
            ],
            id="toronto-1h",
        ),
        # Samoa skipped 30 December 2011: one edge where the 31st starts, not two.
        pytest.param(
            "Pacific/Apia",
            utc(2011, 12, 29),
            utc(2012, 1, 1),
            "1d",
            [
                utc(2011, 12, 29),
                utc(2011, 12, 29, 10),
                utc(2011, 12, 30, 10),
                utc(2011, 12, 31, 10),
                utc(2012, 1, 1),
            ],
            id="apia-1d",
        ),
        pytest.param(
            "Europe/Berlin",
            utc(2024, 1, 1, 12),
            utc(2024, 1, 1, 12),
            "1h",
            [utc(2024, 1, 1, 12)],
            id="empty-window",
        ),
    ],
)
def test_series_edges(
    tz: str, start: datetime, end: datetime, step: Step, edges: list[datetime]
) -> None:
    assert series_edges(Window("custom", start, end, tz), step) == edges


@pytest.mark.parametrize(
    ("tz", "start", "end", "buckets"),
    [
        pytest.param(
            "Europe/Berlin", utc(2024, 3, 30, 23), utc(2024, 3, 31, 22), 92, id="berlin-spring"
        ),
        pytest.param(
            "Europe/Berlin", utc(2024, 10, 26, 22), utc(2024, 10, 27, 23), 100, id="berlin-autumn"
        ),
        pytest.param(
            "Australia/Lord_Howe",
            utc(2024, 10, 5, 13, 30),
            utc(2024, 10, 6, 13),
            94,
            id="lord-howe-spring",
        ),
    ],
)
def test_quarter_hours_on_a_dst_day_are_all_15_minutes(
    tz: str, start: datetime, end: datetime, buckets: int
) -> None:
    edges = series_edges(Window("custom", start, end, tz), "15m")
    assert len(edges) == buckets + 1
    assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(edges))


WINDOWS = [
    pytest.param(
        "Europe/Berlin", utc(2024, 3, 29, 7, 7), utc(2024, 4, 2, 9, 9), id="berlin-spring"
    ),
    pytest.param(
        "Europe/Berlin", utc(2024, 10, 25, 7, 7), utc(2024, 10, 29, 9, 9), id="berlin-autumn"
    ),
    pytest.param("America/New_York", utc(2024, 11, 1), utc(2024, 11, 5), id="new-york-autumn"),
    pytest.param("Asia/Kathmandu", utc(2024, 6, 12, 6, 1), utc(2024, 6, 15, 6), id="kathmandu"),
    pytest.param("Pacific/Chatham", utc(2024, 9, 27), utc(2024, 9, 30, 1), id="chatham-spring"),
    pytest.param(
        "Australia/Lord_Howe", utc(2024, 4, 5), utc(2024, 4, 8, 3, 3), id="lord-howe-autumn"
    ),
]


@pytest.mark.parametrize(("tz", "start", "end"), WINDOWS)
@pytest.mark.parametrize(("step", "minutes"), [("15m", 15), ("1h", 60), ("1d", 24 * 60)])
def test_edges_increase_from_start_to_end_on_local_boundaries(
    tz: str, start: datetime, end: datetime, step: Step, minutes: int
) -> None:
    edges = series_edges(Window("custom", start, end, tz), step)
    assert (edges[0], edges[-1]) == (start, end)
    assert all(a < b for a, b in itertools.pairwise(edges))
    for edge in edges[1:-1]:
        local = edge.astimezone(ZoneInfo(tz))
        assert (local.hour * 60 + local.minute) % minutes == 0, local
        assert (local.second, local.microsecond) == (0, 0), local
        assert edge.tzinfo is UTC


@pytest.mark.parametrize(("tz", "start", "end"), WINDOWS)
def test_finer_steps_split_coarser_buckets(tz: str, start: datetime, end: datetime) -> None:
    window = Window("custom", start, end, tz)
    days, hours_, quarters = (set(series_edges(window, step)) for step in ("1d", "1h", "15m"))
    assert days <= hours_ <= quarters


@pytest.mark.parametrize(
    ("start", "end"),
    [
        pytest.param(datetime(2024, 1, 1), utc(2024, 1, 2), id="naive"),
        pytest.param(
            datetime.fromisoformat("2024-01-01T00:00:00+01:00"), utc(2024, 1, 2), id="not-utc"
        ),
        pytest.param(utc(2024, 1, 2), utc(2024, 1, 1), id="backwards"),
    ],
)
def test_a_window_holds_ordered_utc_instants(start: datetime, end: datetime) -> None:
    with pytest.raises(ValueError, match="window"):
        Window("custom", start, end, "Europe/Berlin")
