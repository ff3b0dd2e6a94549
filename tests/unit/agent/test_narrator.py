"""The offline narrator states only the figures it is given, rounded for display."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from agent import narrator
from tools.catalog import (
    Comparison,
    CostBreakdown,
    DeviceChange,
    DeviceKwh,
    EnergySummary,
    Proposal,
    Quality,
    Totals,
    WindowOut,
)

FRESH = datetime(2026, 11, 22, 9, 41, tzinfo=UTC)
TODAY = WindowOut(
    name="day",
    start=datetime(2026, 11, 21, 23, tzinfo=UTC),
    end=FRESH,
    timezone="Europe/Berlin",
)
TOTALS = Totals(
    consumption_kwh=12.3456,
    solar_kwh=4.5,
    grid_import_kwh=9.87654,
    grid_export_kwh=1.2345,
    battery_charge_kwh=0.0,
    battery_discharge_kwh=0.0,
    estimated_cost=3.456,
    export_credit=0.0988,
    net_cost=3.3572,
    currency="EUR",
)
SUMMARY = EnergySummary(
    fresh_as_of=FRESH,
    window=TODAY,
    totals=TOTALS,
    self_consumption_kwh=3.2655,
    self_consumption_pct=72.5666,
    top_devices=[
        DeviceKwh(name="Heat pump", kind="consumer", kwh=5.5555, share_of_consumption=0.45)
    ],
    other_devices=3,
    data_quality=Quality(offline_devices=[], capped_gaps=0, implausible_readings_rejected=0),
)


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"\d+(?:\.\d+)?", text))


def test_energy_states_each_figure_once_rounded_and_nothing_else() -> None:
    text = " ".join(narrator.energy(SUMMARY))
    assert "You used 12.35 kWh today so far." in text
    assert '"Heat pump" with 5.56 kWh (45% of it)' in text
    assert "Solar produced 4.50 kWh, 73% of it used at home." in text
    assert "imported 9.88 kWh and exported 1.23 kWh" in text
    assert "Figures as of 10:41 on 22 Nov (Europe/Berlin)." in text  # local time
    allowed = {"12.35", "5.56", "45", "4.50", "73", "9.88", "1.23", "10", "41", "22"}
    assert _numbers(text) <= allowed


def test_cost_adds_up_and_names_the_currency() -> None:
    breakdown = CostBreakdown(
        fresh_as_of=FRESH,
        window=TODAY.model_copy(update={"name": "last_week"}),
        currency="EUR",
        import_kwh=20.0,
        import_cost=6.0,
        fixed_charges=2.8,
        local_days=7,
        estimated_cost=8.8,
        export_kwh=5.0,
        export_credit=0.4,
        net_cost=8.4,
        import_price_per_kwh=0.3,
        export_price_per_kwh=0.08,
        time_of_use_periods=0,
    )
    text = " ".join(narrator.cost(breakdown))
    assert "estimated cost last week is 8.80 EUR: 6.00 EUR for 20.00 kWh" in text
    assert "earned 0.40 EUR, so the net cost is 8.40 EUR" in text


def _dates(start: datetime, end: datetime, zone: str = "Europe/Berlin") -> str:
    return narrator.window_phrase(WindowOut(name="dates", start=start, end=end, timezone=zone))


def test_a_window_of_dates_is_spoken_as_its_local_days() -> None:
    # 3 to 9 November: midnight in Berlin is 23:00 UTC the day before.
    week = _dates(datetime(2026, 11, 2, 23, tzinfo=UTC), datetime(2026, 11, 9, 23, tzinfo=UTC))
    assert week == "from Tue 3 Nov to Mon 9 Nov 2026"
    day = _dates(datetime(2026, 11, 2, 23, tzinfo=UTC), datetime(2026, 11, 3, 23, tzinfo=UTC))
    assert day == "on Tue 3 Nov 2026"
    # March 2026 holds the change to summer time: it ends at 22:00 UTC.
    month = _dates(datetime(2026, 2, 28, 23, tzinfo=UTC), datetime(2026, 3, 31, 22, tzinfo=UTC))
    assert month == "in March 2026"
    year = _dates(datetime(2024, 12, 31, 23, tzinfo=UTC), datetime(2025, 12, 31, 23, tzinfo=UTC))
    assert year == "in 2025"
    # A southern winter, in Chatham (UTC+12:45 then).
    winter = _dates(
        datetime(2026, 5, 31, 11, 15, tzinfo=UTC),
        datetime(2026, 8, 31, 11, 15, tzinfo=UTC),
        "Pacific/Chatham",
    )
    assert winter == "from June 2026 to August 2026"
    over_new_year = _dates(
        datetime(2025, 12, 27, 23, tzinfo=UTC), datetime(2026, 1, 3, 23, tzinfo=UTC)
    )
    assert over_new_year == "from Sun 28 Dec 2025 to Sat 3 Jan 2026"
    to_now = _dates(datetime(2025, 12, 31, 23, tzinfo=UTC), datetime(2026, 3, 29, 9, tzinfo=UTC))
    assert to_now == "from Thu 1 Jan 2026 until now"


def _comparison(like_for_like: bool) -> Comparison:
    # This month so far (1 Dec to 4 Dec, 10:41 in Berlin) against November.
    running = WindowOut(
        name="dates",
        start=datetime(2026, 11, 30, 23, tzinfo=UTC),
        end=datetime(2026, 12, 4, 9, 41, tzinfo=UTC),
        timezone="Europe/Berlin",
    )
    cut_end = datetime(2026, 11, 4, 9, 41, tzinfo=UTC) if like_for_like else running.start
    november = running.model_copy(update={"start": datetime(2026, 10, 31, 23, tzinfo=UTC),
                                          "end": cut_end})  # fmt: skip
    before = TOTALS.model_copy(update={"consumption_kwh": 10.0, "estimated_cost": 3.0})
    return Comparison(
        fresh_as_of=FRESH,
        a=running,
        b=november,
        like_for_like=like_for_like,
        totals_a=TOTALS,
        totals_b=before,
        consumption_change_kwh=2.3456,
        consumption_change_pct=23.456,
        cost_change=0.456,
        devices_changed_most=[
            DeviceChange(name="Heat pump", kwh_a=5.5555, kwh_b=4.0, change_kwh=1.5555)
        ],
    )


def test_a_comparison_names_the_span_it_cut_and_the_device_that_changed_most() -> None:
    text = " ".join(narrator.comparison(_comparison(like_for_like=True)))
    assert (
        "You used 12.35 kWh from Tue 1 Dec 2026 until now against 10.00 kWh over the same "
        "span from Sun 1 Nov to Wed 4 Nov 2026, 10:41."
    ) in text
    assert "That is 2.35 kWh (23%) more." in text
    assert '"Heat pump" changed most: 5.56 kWh against 4.00 kWh.' in text
    assert "EUR" not in text  # an energy question gets no cost
    costed = " ".join(narrator.comparison(_comparison(like_for_like=True), cost=True))
    assert "It cost an estimated 3.46 EUR against 3.00 EUR: 0.46 EUR more." in costed
    whole = " ".join(narrator.comparison(_comparison(like_for_like=False)))
    assert "same span" not in whole


def test_no_readings_is_said_plainly() -> None:
    empty = SUMMARY.model_copy(update={"fresh_as_of": None})
    assert narrator.energy(empty)[-1] == "There are no readings for this period yet."


def test_a_proposal_is_a_question() -> None:
    p = Proposal(
        fresh_as_of=FRESH,
        device_name="EV charger",
        op="SET_CHARGE_CURRENT",
        value="16",
        command={"op": "SET_CHARGE_CURRENT", "device_name": "EV charger", "value": "16"},
        requires_consent=True,
    )
    assert narrator.proposal(p) == ['Shall I limit "EV charger" to 16 A? Please answer yes or no.']
    off = p.model_copy(update={"op": "SET_POWER", "value": "OFF", "device_name": "Heater"})
    assert narrator.proposal(off) == ['Shall I switch "Heater" off? Please answer yes or no.']
