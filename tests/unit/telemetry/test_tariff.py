"""Tariffs: time-of-use periods override the import price by weekday and local time."""

from __future__ import annotations

from datetime import time

import pytest
from pydantic import ValidationError

from telemetry.tariff import Tariff

PEAK = {"days": ["mon", "fri"], "start": "17:00", "end": "21:00", "import_price_per_kwh": 0.5}


def _tariff(*periods: dict[str, object]) -> Tariff:
    return Tariff.model_validate(
        {
            "currency": "EUR",
            "import_price_per_kwh": 0.3,
            "export_price_per_kwh": 0.08,
            "time_of_use": list(periods),
        }
    )


@pytest.mark.parametrize(
    ("weekday", "at", "price"),
    [
        ("mon", time(17, 0), 0.5),
        ("mon", time(20, 59), 0.5),
        ("mon", time(21, 0), 0.3),
        ("mon", time(16, 59), 0.3),
        ("tue", time(18, 0), 0.3),
        ("fri", time(18, 0), 0.5),
    ],
)
def test_the_import_price_follows_the_period_covering_the_time(
    weekday: str, at: time, price: float
) -> None:
    assert _tariff(PEAK).import_price_at(weekday, at) == price  # type: ignore[arg-type]


def test_a_period_may_run_to_the_end_of_the_day() -> None:
    late = {"days": ["sun"], "start": "22:00", "end": "24:00", "import_price_per_kwh": 0.1}
    assert _tariff(late).import_price_at("sun", time(23, 59)) == 0.1


def test_adjacent_periods_are_fine_and_overlapping_ones_are_refused() -> None:
    after = {**PEAK, "start": "21:00", "end": "23:00"}
    assert len(_tariff(PEAK, after).time_of_use) == 2
    overlapping = {**PEAK, "days": ["fri"], "start": "20:00", "end": "22:00"}
    with pytest.raises(ValidationError, match="overlap on fri"):
        _tariff(PEAK, overlapping)


@pytest.mark.parametrize(
    "change",
    [
        {"start": "25:00"},
        {"start": "21:00", "end": "17:00"},
        {"days": []},
        {"days": ["mon", "mon"]},
    ],
)
def test_malformed_periods_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        _tariff({**PEAK, **change})


def test_prices_must_be_finite() -> None:
    with pytest.raises(ValidationError):
        Tariff.model_validate(
            {"currency": "EUR", "import_price_per_kwh": "NaN", "export_price_per_kwh": 0}
        )
