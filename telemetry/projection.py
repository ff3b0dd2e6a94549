"""What a running period (this month so far) is on course to cost by its end, with a range,
from the household's own recent days and nothing else.

The method, simple enough to defend and to backtest (bench/projection_backtest.py):

    projected = cost so far + m x R + fixed charges of the days still to come
    range     = projected -/+ z x s x sqrt(R + R^2 / n), never below the cost so far

where m and s are the mean and the sample standard deviation of the import cost of the
household's last whole local days (up to HISTORY_DAYS, at least MIN_HISTORY_DAYS), R the
days left in the period (fractional: the rest of today counts as the part of it not yet
elapsed), n the days of history and z the normal quantile of the range's coverage (80%). The
range is the prediction interval of a sum of R days that vary about their mean as the n days
did, with that mean itself only estimated from n of them (the R^2 / n term: for the rest of a
month, the larger part). It knows no weather, no season and no tariff change, and the
backtest shows what that costs: over the demo household's heating season (Nov to Apr) its
month's cost was 11.6% off on average (the run rate: 13.4%), and the nominal 80% range held
the real cost at 49% of the cut-offs (85% with 21 days or more elapsed); the narrator does
not call it an 80% range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist, fmean, stdev

HISTORY_DAYS = 14
MIN_HISTORY_DAYS = 3
COVERAGE = 0.8
_Z = NormalDist().inv_cdf(0.5 + COVERAGE / 2)


@dataclass(frozen=True)
class Projection:
    so_far: float  # the period's estimated cost so far (import and fixed charges)
    remaining_days: float
    fixed_remaining: float  # the fixed charges of the local days still to come
    history_days: int
    daily_mean: float  # import cost per day over the history
    daily_sd: float

    @property
    def expected(self) -> float:
        return self.so_far + self.daily_mean * self.remaining_days + self.fixed_remaining

    @property
    def spread(self) -> float:
        r = self.remaining_days
        return _Z * self.daily_sd * math.sqrt(r + r * r / self.history_days)

    @property
    def low(self) -> float:
        return max(self.so_far + self.fixed_remaining, self.expected - self.spread)

    @property
    def high(self) -> float:
        return self.expected + self.spread


def project(
    so_far: float, daily: Sequence[float], remaining_days: float, fixed_remaining: float
) -> Projection:
    """The projection of a period that has cost `so_far`, from the import costs of the
    household's recent whole days (`daily`, at least MIN_HISTORY_DAYS of them)."""
    if len(daily) < MIN_HISTORY_DAYS:
        raise ValueError(f"a projection needs {MIN_HISTORY_DAYS} days of history")
    if remaining_days < 0:
        raise ValueError("the period has ended")
    return Projection(
        so_far=so_far,
        remaining_days=remaining_days,
        fixed_remaining=fixed_remaining,
        history_days=len(daily),
        daily_mean=fmean(daily),
        daily_sd=stdev(daily),
    )
