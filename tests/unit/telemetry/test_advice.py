"""telemetry.advice: the tariff's cheapest spans, and runs of a device, the latter against the
eval reference's plain reading of the same quarter hours."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from evals import reference
from telemetry import advice
from telemetry.energy import BucketEnergy
from telemetry.tariff import Tariff, TimeOfUsePeriod


def _tariff(*periods: TimeOfUsePeriod) -> Tariff:
    return Tariff(
        currency="EUR", import_price_per_kwh=0.3, export_price_per_kwh=0.05, time_of_use=periods
    )


def test_a_flat_tariff_has_no_cheapest_hours() -> None:
    assert advice.cheapest(_tariff()) == ()
    assert advice.price_range(_tariff()) == (0.3, 0.3)


def test_the_cheapest_spans_merge_weekdays_and_include_the_flat_price_where_it_is_lowest() -> None:
    night = TimeOfUsePeriod(days=("mon", "tue"), start="00:00", end="06:00",
                            import_price_per_kwh=0.1)  # fmt: skip
    peak = TimeOfUsePeriod(days=("mon",), start="17:00", end="20:00", import_price_per_kwh=0.5)
    spans = advice.cheapest(_tariff(night, peak))
    assert spans == (advice.Span(("mon", "tue"), "00:00", "06:00", 0.1),)
    assert advice.price_range(_tariff(night, peak)) == (0.1, 0.5)
    # A period dearer than the flat price everywhere: the flat hours are the cheapest.
    dear = TimeOfUsePeriod(days=("sat",), start="12:00", end="24:00", import_price_per_kwh=0.4)
    spans = advice.cheapest(_tariff(dear))
    assert spans[0] == advice.Span(
        ("mon", "tue", "wed", "thu", "fri", "sun"), "00:00", "24:00", 0.3
    )
    assert advice.Span(("sat",), "00:00", "12:00", 0.3) in spans


@pytest.mark.parametrize("seed", range(10))
def test_runs_are_the_references(seed: int) -> None:
    rng = random.Random(seed)
    start = datetime(2026, 3, 28, tzinfo=UTC)
    quarter = timedelta(minutes=15)
    wh = [rng.choice([0.0, 10.0, 24.9, 25.0, 300.0]) for _ in range(300)]
    buckets = [BucketEnergy(start + quarter * k, w, 0.0) for k, w in enumerate(wh) if w]
    assert advice.runs(buckets) == pytest.approx(reference.runs(wh), abs=1e-12)
