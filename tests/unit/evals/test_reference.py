"""The reference energy figures (evals/reference.py) against hand-computed numbers.

The integration tests trust the reference to judge the SQL implementation, so each behaviour
of the energy contract is pinned here with literal expectations worked out on paper.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evals.reference import (
    Dev,
    Raw,
    dedupe,
    device_wh,
    figures,
    import_price,
    kind_totals,
    series,
)
from telemetry.tariff import Tariff

CAP = timedelta(minutes=15)
BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2024, 1, 15, 0, 0, tzinfo=UTC)  # a Monday, CET (UTC+1) in Berlin


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _steady(device: str, first: datetime, until: datetime, watts: float) -> list[Raw]:
    """A reading every 5 minutes from `first` up to (not including) `until`."""
    readings = []
    at = first
    while at < until:
        readings.append(Raw(device, at, watts))
        at += timedelta(minutes=5)
    return readings


def _tariff(**changes: object) -> Tariff:
    fields: dict[str, object] = {
        "currency": "EUR",
        "import_price_per_kwh": 0.3,
        "export_price_per_kwh": 0.08,
        "daily_fixed_charge": 0.0,
        "time_of_use": [],
    }
    fields.update(changes)
    return Tariff.model_validate(fields)


def _wh(readings: list[Raw], **window: datetime | timedelta) -> tuple[float, float]:
    by_device = dedupe(readings)
    assert len(by_device) == 1
    (points,) = by_device.values()
    kwargs: dict[str, datetime | timedelta] = {"cap": CAP, **window}
    return device_wh(points, **kwargs)  # type: ignore[arg-type]


def test_constant_power_over_a_whole_window() -> None:
    readings = _steady("fridge", _at(0), _at(60), 1000.0)
    assert _wh(readings, start=_at(0), end=_at(60), now=_at(120)) == pytest.approx((1000.0, 0.0))


def test_a_gap_longer_than_the_cap_counts_only_the_cap() -> None:
    readings = [Raw("fridge", _at(0), 2000.0), Raw("fridge", _at(60), 0.0)]
    # 2000 W for the capped 15 minutes, not the 60 until the next reading.
    assert _wh(readings, start=_at(0), end=_at(120), now=_at(180)) == pytest.approx((500.0, 0.0))


def test_the_last_reading_holds_until_now() -> None:
    readings = [Raw("fridge", _at(0), 600.0)]
    assert _wh(readings, start=_at(0), end=_at(60), now=_at(10)) == pytest.approx((100.0, 0.0))


def test_the_last_reading_holds_only_for_the_cap_when_now_is_later() -> None:
    readings = [Raw("fridge", _at(0), 600.0)]
    assert _wh(readings, start=_at(0), end=_at(60), now=_at(60)) == pytest.approx((150.0, 0.0))


def test_an_interval_crossing_the_window_start_and_end_is_split() -> None:
    readings = [Raw("fridge", _at(-10), 1200.0), Raw("fridge", _at(5), 2400.0)]
    # 1200 W for the 5 minutes of [-10, 5) inside the window, 2400 W for 5 of [5, 20).
    assert _wh(readings, start=_at(0), end=_at(10), now=_at(60)) == pytest.approx((300.0, 0.0))


def test_an_interval_covering_the_whole_window_counts_only_the_window() -> None:
    readings = [Raw("fridge", _at(0), 3600.0), Raw("fridge", _at(10), 0.0)]
    assert _wh(readings, start=_at(4), end=_at(7), now=_at(60)) == pytest.approx((180.0, 0.0))


def test_duplicates_keep_the_first_occurrence_and_input_order_does_not_matter() -> None:
    readings = [
        Raw("fridge", _at(0), 1200.0),
        Raw("fridge", _at(5), 600.0),
        Raw("fridge", _at(0), 9999.0),  # a later conflicting duplicate: rejected
        Raw("fridge", _at(10), 0.0),
        Raw("fridge", _at(5), 600.0),  # an identical resend
    ]
    # 1200 W for 5 minutes + 600 W for 5 minutes.
    expected = (150.0, 0.0)
    assert dedupe(readings)["fridge"] == [(_at(0), 1200.0), (_at(5), 600.0), (_at(10), 0.0)]
    assert _wh(readings, start=_at(0), end=_at(60), now=_at(60)) == pytest.approx(expected)

    # Late arrivals: the same readings in another order (first occurrences still first).
    late = [readings[3], readings[1], readings[0], readings[4], readings[2]]
    assert _wh(late, start=_at(0), end=_at(60), now=_at(60)) == pytest.approx(expected)
    distinct = readings[:2] + readings[3:4]
    for seed in range(5):
        shuffled = distinct[:]
        random.Random(seed).shuffle(shuffled)
        assert _wh(shuffled, start=_at(0), end=_at(60), now=_at(60)) == pytest.approx(expected)


def test_a_local_timestamp_is_the_same_instant_as_its_utc_one() -> None:
    # Berlin falls back at 01:00 UTC on 2024-10-27; these readings straddle that hour.
    start = datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    utc = [Raw("fridge", start + timedelta(minutes=5 * i), 1200.0) for i in range(12)]
    local = [Raw(r.device, r.ts.astimezone(BERLIN), r.watts) for r in utc]
    window = {"start": start, "end": start + timedelta(hours=1), "now": start + timedelta(hours=2)}
    assert _wh(utc, **window) == pytest.approx((1200.0, 0.0))
    assert _wh(local, **window) == pytest.approx((1200.0, 0.0))


def test_negative_grid_power_counts_as_export() -> None:
    devices = [Dev("grid", "grid")]
    readings = [
        *_steady("grid", _at(0), _at(30), 1000.0),
        *_steady("grid", _at(30), _at(45), -2000.0),
        Raw("grid", _at(45), 0.0),
    ]
    result = figures(
        devices,
        readings,
        start=_at(0),
        end=_at(60),
        now=_at(60),
        cap=CAP,
        tariff=_tariff(),
        timezone="Europe/Berlin",
    )
    assert result.import_kwh == pytest.approx(0.5)
    assert result.export_kwh == pytest.approx(0.5)
    assert result.per_device == {"grid": pytest.approx((0.5, 0.5))}
    assert result.cost == pytest.approx(0.15)  # 0.5 kWh x 0.30
    assert result.export_credit == pytest.approx(0.04)  # 0.5 kWh x 0.08
    assert result.net_cost == pytest.approx(0.11)


def test_battery_power_splits_into_charge_and_discharge() -> None:
    devices = [Dev("battery", "battery")]
    readings = [Raw("battery", _at(0), 3000.0), Raw("battery", _at(10), -1500.0)]
    result = figures(
        devices,
        readings,
        start=_at(0),
        end=_at(60),
        now=_at(60),
        cap=CAP,
        tariff=_tariff(),
        timezone="UTC",
    )
    assert result.battery_charge_kwh == pytest.approx(0.5)  # 3000 W x 10 min
    assert result.battery_discharge_kwh == pytest.approx(0.375)  # 1500 W x 15 min (cap)


def test_consumption_and_each_devices_share() -> None:
    devices = [Dev("heat_pump", "consumer"), Dev("car", "ev_charger"), Dev("pv", "solar")]
    readings = [
        *_steady("heat_pump", _at(0), _at(60), 1000.0),
        *_steady("car", _at(0), _at(60), 3000.0),
        *_steady("pv", _at(0), _at(60), 500.0),
    ]
    window = {"start": _at(0), "end": _at(60), "now": _at(60)}
    result = figures(devices, readings, cap=CAP, tariff=_tariff(), timezone="UTC", **window)
    assert result.consumption_kwh == pytest.approx(4.0)
    assert result.share == {"heat_pump": pytest.approx(0.25), "car": pytest.approx(0.75)}

    idle = figures(devices, [], cap=CAP, tariff=_tariff(), timezone="UTC", **window)
    assert idle.consumption_kwh == 0.0
    assert idle.share == {"heat_pump": 0.0, "car": 0.0}
    assert idle.per_device == {"heat_pump": (0.0, 0.0), "car": (0.0, 0.0), "pv": (0.0, 0.0)}


def test_time_of_use_pricing_splits_an_interval_at_a_period_boundary() -> None:
    peak = {"days": ["mon"], "start": "17:00", "end": "21:00", "import_price_per_kwh": 0.5}
    # 1000 W from 16:30 to 17:10 local (CET, so 15:30-16:10 UTC), one reading held 40 minutes.
    readings = [
        Raw("grid", datetime(2024, 1, 15, 15, 30, tzinfo=UTC), 1000.0),
        Raw("grid", datetime(2024, 1, 15, 16, 10, tzinfo=UTC), 0.0),
    ]
    result = figures(
        [Dev("grid", "grid")],
        readings,
        start=datetime(2024, 1, 15, tzinfo=UTC),
        end=datetime(2024, 1, 16, tzinfo=UTC),
        now=datetime(2024, 1, 16, tzinfo=UTC),
        cap=timedelta(hours=1),
        tariff=_tariff(time_of_use=[peak]),
        timezone="Europe/Berlin",
    )
    assert result.import_kwh == pytest.approx(2 / 3)
    # 30 minutes (0.5 kWh) at 0.30 + 10 minutes (1/6 kWh) at 0.50.
    assert result.cost == pytest.approx(0.15 + 0.5 / 6, rel=1e-12)


def test_time_of_use_follows_the_local_weekday_across_local_midnight() -> None:
    monday_night = {"days": ["mon"], "start": "23:00", "end": "24:00", "import_price_per_kwh": 1.0}
    # 1000 W from 23:30 Monday to 00:30 Tuesday local (22:30-23:30 UTC on Monday).
    readings = _steady("grid", datetime(2024, 1, 15, 22, 30, tzinfo=UTC), _at(24 * 60 + 30), 1e3)
    result = figures(
        [Dev("grid", "grid")],
        readings,
        start=datetime(2024, 1, 15, 22, 30, tzinfo=UTC),
        end=datetime(2024, 1, 15, 23, 30, tzinfo=UTC),
        now=datetime(2024, 1, 16, tzinfo=UTC),
        cap=CAP,
        tariff=_tariff(time_of_use=[monday_night]),
        timezone="Europe/Berlin",
    )
    # Half an hour on Monday at 1.00, half an hour on Tuesday at the flat 0.30.
    assert result.cost == pytest.approx(0.5 + 0.15, rel=1e-12)


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        # 23:00 to 01:00 local (CET) touches two local dates.
        (datetime(2024, 1, 15, 22, tzinfo=UTC), datetime(2024, 1, 16, 0, tzinfo=UTC), 2),
        # Local midnight to local midnight is one date: the end is exclusive.
        (datetime(2024, 1, 14, 23, tzinfo=UTC), datetime(2024, 1, 15, 23, tzinfo=UTC), 1),
        # One UTC day is two local dates in Berlin.
        (datetime(2024, 1, 15, 0, tzinfo=UTC), datetime(2024, 1, 16, 0, tzinfo=UTC), 2),
        # A week of local dates.
        (datetime(2024, 1, 14, 23, tzinfo=UTC), datetime(2024, 1, 21, 23, tzinfo=UTC), 7),
        # The 23-hour local day of the spring DST change is one date.
        (datetime(2024, 3, 30, 23, tzinfo=UTC), datetime(2024, 3, 31, 22, tzinfo=UTC), 1),
        (datetime(2024, 1, 15, 0, tzinfo=UTC), datetime(2024, 1, 15, 0, tzinfo=UTC), 0),
    ],
)
def test_the_fixed_charge_counts_the_local_days_the_window_touches(
    start: datetime, end: datetime, days: int
) -> None:
    result = figures(
        [Dev("grid", "grid")],
        [],
        start=start,
        end=end,
        now=end,
        cap=CAP,
        tariff=_tariff(daily_fixed_charge=0.5),
        timezone="Europe/Berlin",
    )
    assert result.local_days == days
    assert result.fixed_charges == pytest.approx(0.5 * days)
    assert result.cost == pytest.approx(0.5 * days)
    assert result.net_cost == pytest.approx(0.5 * days)


def test_self_consumption_is_the_solar_not_exported() -> None:
    devices = [Dev("pv", "solar"), Dev("grid", "grid"), Dev("fridge", "consumer")]
    readings = [
        *_steady("pv", _at(0), _at(60), 3000.0),
        *_steady("grid", _at(0), _at(60), -1000.0),
        *_steady("fridge", _at(0), _at(60), 2000.0),
    ]
    window = {"start": _at(0), "end": _at(60), "now": _at(60)}
    result = figures(devices, readings, cap=CAP, tariff=_tariff(), timezone="UTC", **window)
    assert result.solar_kwh == pytest.approx(3.0)
    assert result.export_kwh == pytest.approx(1.0)
    assert result.self_consumption_kwh == pytest.approx(2.0)
    assert result.self_consumption_pct == pytest.approx(200 / 3)

    no_sun = [r for r in readings if r.device != "pv"]
    dark = figures(devices, no_sun, cap=CAP, tariff=_tariff(), timezone="UTC", **window)
    assert dark.self_consumption_kwh == 0.0
    assert dark.self_consumption_pct is None


def test_series_buckets_sum_to_the_whole_window() -> None:
    devices = [Dev("fridge", "consumer"), Dev("grid", "grid")]
    readings = [
        Raw("fridge", _at(0), 1200.0),
        Raw("fridge", _at(7), 600.0),
        Raw("fridge", _at(40), 2400.0),  # after a 33-minute gap: counts 15
        Raw("grid", _at(3), 1800.0),
        Raw("grid", _at(13), -600.0),
        Raw("grid", _at(22), 3600.0),
    ]
    edges = [_at(0), _at(10), _at(20), _at(30), _at(60)]
    buckets = series(devices, readings, edges=edges, now=_at(50), cap=CAP)

    # fridge: 1200 W [0, 7), 600 W [7, 22), 2400 W [40, 50) (now).
    # grid: 1800 W [3, 13), -600 W [13, 22), 3600 W [22, 37).
    assert buckets == [
        {"fridge": pytest.approx((170.0, 0.0)), "grid": pytest.approx((210.0, 0.0))},
        {"fridge": pytest.approx((100.0, 0.0)), "grid": pytest.approx((90.0, 70.0))},
        {"fridge": pytest.approx((20.0, 0.0)), "grid": pytest.approx((480.0, 20.0))},
        {"fridge": pytest.approx((400.0, 0.0)), "grid": pytest.approx((420.0, 0.0))},
    ]

    whole = figures(
        devices,
        readings,
        start=_at(0),
        end=_at(60),
        now=_at(50),
        cap=CAP,
        tariff=_tariff(),
        timezone="UTC",
    )
    for key in ("fridge", "grid"):
        positive = sum(bucket[key][0] for bucket in buckets) / 1000
        negative = sum(bucket[key][1] for bucket in buckets) / 1000
        assert whole.per_device[key] == pytest.approx((positive, negative), rel=1e-12)
    totals = [kind_totals(devices, bucket) for bucket in buckets]
    assert sum(t["consumption"] for t in totals) / 1000 == pytest.approx(whole.consumption_kwh)
    assert sum(t["import"] for t in totals) / 1000 == pytest.approx(whole.import_kwh)
    assert sum(t["export"] for t in totals) / 1000 == pytest.approx(whole.export_kwh)


def test_each_series_bucket_is_the_window_figure_of_that_bucket() -> None:
    # Irregular readings (gaps, sign changes, some after now) and uneven edges: series hands
    # spans out to buckets itself, and must agree with device_wh asked bucket by bucket.
    rng = random.Random(7)
    readings = [
        Raw("grid", _at(rng.uniform(-30, 300)), rng.uniform(-3000, 3000)) for _ in range(200)
    ]
    edges = [_at(0)]
    while edges[-1] < _at(280):
        edges.append(edges[-1] + timedelta(seconds=rng.randint(1, 1800)))
    now = _at(250.5)
    buckets = series([Dev("grid", "grid")], readings, edges=edges, now=now, cap=CAP)
    points = dedupe(readings)["grid"]
    assert len(buckets) == len(edges) - 1
    for bucket, bucket_start, bucket_end in zip(buckets, edges, edges[1:], strict=False):
        alone = device_wh(points, start=bucket_start, end=bucket_end, now=now, cap=CAP)
        assert bucket["grid"] == pytest.approx(alone, rel=1e-12, abs=1e-12)


def test_series_edges_must_increase() -> None:
    with pytest.raises(ValueError, match="edges must increase"):
        series([], [], edges=[_at(10), _at(10)], now=_at(10), cap=CAP)


# Decided: a time-of-use period applies to the local wall-clock times it names. Berlin's
# 02:00-03:00 is skipped on the last Sunday of March (no instant is priced by the period)
# and repeated on the last Sunday of October (both occurrences are).
NIGHT = {"days": ["sun"], "start": "02:00", "end": "03:00", "import_price_per_kwh": 1.0}


def test_a_period_in_the_skipped_dst_hour_never_applies() -> None:
    # 00:00-02:00 UTC on 2024-03-31 is 01:00 CET to 04:00 CEST: two hours, none in the period.
    first = datetime(2024, 3, 31, 0, 0, tzinfo=UTC)
    result = figures(
        [Dev("grid", "grid")],
        _steady("grid", first, first + timedelta(hours=2), 1000.0),
        start=first,
        end=first + timedelta(hours=2),
        now=first + timedelta(hours=3),
        cap=CAP,
        tariff=_tariff(time_of_use=[NIGHT]),
        timezone="Europe/Berlin",
    )
    assert result.import_kwh == pytest.approx(2.0)
    assert result.cost == pytest.approx(0.6)  # 2 kWh x 0.30


def test_a_period_in_the_repeated_dst_hour_applies_to_both_occurrences() -> None:
    # 23:30 UTC on 2024-10-26 to 02:30 UTC is 01:30 CEST to 03:30 CET: three hours, of which
    # 00:00-01:00 UTC (02:xx CEST) and 01:00-02:00 UTC (02:xx CET) are in the period.
    first = datetime(2024, 10, 26, 23, 30, tzinfo=UTC)
    result = figures(
        [Dev("grid", "grid")],
        _steady("grid", first, first + timedelta(hours=3), 1000.0),
        start=first,
        end=first + timedelta(hours=3),
        now=first + timedelta(hours=4),
        cap=CAP,
        tariff=_tariff(time_of_use=[NIGHT], daily_fixed_charge=0.25),
        timezone="Europe/Berlin",
    )
    assert result.import_kwh == pytest.approx(3.0)
    assert result.local_days == 1  # all on Sunday 27 October, local
    # 2 kWh x 1.00 + 1 kWh x 0.30 + one day's fixed charge.
    assert result.cost == pytest.approx(2.3 + 0.25)


_PERIODS = st.lists(
    st.tuples(
        st.sets(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), min_size=1),
        st.integers(0, 95),
        st.integers(1, 96),
        st.floats(0, 1),
    ),
    max_size=4,
)


def _hhmm(quarter: int) -> str:
    return f"{quarter // 4:02d}:{quarter % 4 * 15:02d}"


@given(_PERIODS, st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)))
def test_the_reference_prices_import_as_the_tariff_does(
    periods: list[tuple[set[str], int, int, float]], local: datetime
) -> None:
    """The reference looks prices up on its own; it must agree with the product's Tariff
    wherever a tariff is valid (periods that do not overlap), at any wall-clock minute."""
    chosen: list[tuple[set[str], int, int, float]] = []
    for days, start, length, price in periods:
        end = min(start + length, 96)
        if not any(days & d and start < e and s < end for d, s, e, _ in chosen):
            chosen.append((days, start, end, price))
    tariff = _tariff(
        time_of_use=[
            {"days": sorted(d), "start": _hhmm(s), "end": _hhmm(e), "import_price_per_kwh": p}
            for d, s, e, p in chosen
        ]
    )
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
    assert import_price(tariff, local) == tariff.import_price_at(day, local.time())  # type: ignore[arg-type]
