"""The eval reference's projection (evals/reference.py) and the service's
(telemetry.projection) are written apart; they agree to 1e-9, and the evals read as many days
of history as the service does."""

from __future__ import annotations

import random

import pytest

from evals import cases, reference
from telemetry import projection


def test_the_evals_read_as_many_days_of_history_as_the_service() -> None:
    assert cases.PROJECTION_HISTORY == projection.HISTORY_DAYS


@pytest.mark.parametrize("seed", range(20))
def test_the_two_projections_agree(seed: int) -> None:
    rng = random.Random(seed)
    daily = [rng.uniform(0, 30) for _ in range(rng.randint(3, 14))]
    so_far, remaining, to_come = rng.uniform(0, 300), rng.uniform(0, 30), rng.uniform(0, 20)
    p = projection.project(so_far, daily, remaining, to_come)
    want = reference.projection(so_far, daily, remaining, to_come, projection.COVERAGE)
    for got, value in zip((p.expected, p.low, p.high), want, strict=True):
        assert abs(got - value) <= 1e-9
    assert so_far + to_come <= p.low <= p.expected <= p.high


def test_too_little_history_is_refused() -> None:
    with pytest.raises(ValueError, match="3 days"):
        projection.project(1.0, [1.0, 2.0], 3.0, 0.0)
