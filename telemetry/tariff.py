"""A household's tariff: import and export prices per kWh, a fixed daily charge, a currency,
and optional time-of-use periods that override the import price by weekday and local time.

Prices are in the currency's major unit (0.32 EUR per kWh), as people write them; money
that is summed and stored (quota spend, costs) is converted to integer minor units there.
"""

from __future__ import annotations

import itertools
import re
from datetime import time
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

_HHMM = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")
_Price = Field(ge=0, le=100, allow_inf_nan=False)


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


class TimeOfUsePeriod(BaseModel):
    """From `start` (inclusive) to `end` (exclusive), local time, on the given weekdays."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: tuple[Weekday, ...] = Field(min_length=1, max_length=7)
    start: str = Field(description="HH:MM, local time")
    end: str = Field(description="HH:MM, local time; 24:00 for the end of the day")
    import_price_per_kwh: float = _Price

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("must be HH:MM between 00:00 and 24:00")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if _minutes(self.start) % 15 or _minutes(self.end) % 15:
            # Energy is rolled up in local quarter hours; a period boundary inside one
            # would need a price split that the rollups cannot give.
            raise ValueError("start and end must fall on a quarter hour (:00, :15, :30, :45)")
        if _minutes(self.start) >= _minutes(self.end):
            raise ValueError("start must be before end (split a period that crosses midnight)")
        if len(set(self.days)) != len(self.days):
            raise ValueError("days must not repeat")
        return self

    def covers(self, weekday: Weekday, at: time) -> bool:
        minute = at.hour * 60 + at.minute
        return weekday in self.days and _minutes(self.start) <= minute < _minutes(self.end)


class Tariff(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR")
    import_price_per_kwh: float = _Price
    export_price_per_kwh: float = _Price
    daily_fixed_charge: float = Field(0.0, ge=0, le=1000, allow_inf_nan=False)
    time_of_use: tuple[TimeOfUsePeriod, ...] = Field(default=(), max_length=64)

    @model_validator(mode="after")
    def _no_overlap(self) -> Self:
        for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
            spans = sorted(
                (_minutes(p.start), _minutes(p.end)) for p in self.time_of_use if day in p.days
            )
            for (_, end), (start, _) in itertools.pairwise(spans):
                if start < end:
                    raise ValueError(f"time_of_use periods overlap on {day}")
        return self

    def import_price_at(self, weekday: Weekday, at: time) -> float:
        for period in self.time_of_use:
            if period.covers(weekday, at):
                return period.import_price_per_kwh
        return self.import_price_per_kwh
