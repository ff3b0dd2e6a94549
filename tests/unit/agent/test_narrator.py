"""The offline narrator states only the figures it is given, rounded for display."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from agent import narrator
from tools.catalog import (
    CostBreakdown,
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


def test_a_window_of_dates_is_spoken_in_local_time() -> None:
    window = WindowOut(
        name="dates",
        start=datetime(2026, 11, 2, 23, tzinfo=UTC),
        end=datetime(2026, 11, 9, 23, tzinfo=UTC),
        timezone="Europe/Berlin",
    )
    assert narrator.window_phrase(window) == "from 3 Nov 2026 00:00 to 10 Nov 2026 00:00"


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
