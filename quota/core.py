"""The quota's vocabulary: limits, UTC periods, a reservation, and why one was refused.

Three budgets are checked together on every reservation: the user's tokens today, the
user's tokens this month, and the whole deployment's spend this month; plus the user's
request rate. Days and months are calendar periods in UTC, by the quota store's clock
(Redis TIME), so every service instance agrees on where a period ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from uuid import UUID

Limit = Literal["daily", "monthly", "spend_cap"]
Scope = Literal["user_day", "user_month", "global_month"]
SCOPES: tuple[Scope, ...] = ("user_day", "user_month", "global_month")

# A period's counters outlive it by this much, then expire at an absolute deadline.
GRACE = timedelta(days=2)


def counter_keys(prefix: str, user: UUID, periods: Periods) -> tuple[str, str, str]:
    """The names of the user-day, user-month and global-month counters (the Redis scripts
    build the same names from TIME)."""
    day, month = periods.day.strftime("%Y%m%d"), periods.month.strftime("%Y%m")
    return f"{prefix}:ud:{user}:{day}", f"{prefix}:um:{user}:{month}", f"{prefix}:gm:{month}"


@dataclass(frozen=True)
class Limits:
    daily_tokens: int
    monthly_tokens: int
    spend_cap_micro: int
    rate_per_minute: int
    burst: int = 5
    # An unsettled reservation (its process died) stops counting after this long.
    lease: timedelta = timedelta(minutes=10)

    @property
    def emission_us(self) -> int:
        """GCRA: the time one request uses up, in microseconds."""
        return 60_000_000 // self.rate_per_minute

    @property
    def tolerance_us(self) -> int:
        """GCRA: how far ahead of the clock the schedule may run (the burst)."""
        return self.emission_us * (self.burst - 1)


@dataclass(frozen=True)
class Periods:
    """The UTC day and month an instant falls in."""

    day: date
    month: date  # its first day

    @classmethod
    def at(cls, instant: datetime) -> Periods:
        d = instant.astimezone(UTC).date()
        return cls(d, d.replace(day=1))

    @property
    def day_start(self) -> datetime:
        return datetime(self.day.year, self.day.month, self.day.day, tzinfo=UTC)

    @property
    def day_end(self) -> datetime:
        return self.day_start + timedelta(days=1)

    @property
    def month_start(self) -> datetime:
        return datetime(self.month.year, self.month.month, 1, tzinfo=UTC)

    @property
    def month_end(self) -> datetime:
        year, month = divmod(self.month.year * 12 + self.month.month, 12)
        return datetime(year, month + 1, 1, tzinfo=UTC)

    def resets_at(self, limit: Limit) -> datetime:
        return self.day_end if limit == "daily" else self.month_end


@dataclass
class Reservation:
    """The worst case of one model call, held against every budget until settled."""

    id: str
    user_id: UUID
    household_id: UUID | None
    model: str
    prompt_tokens: int
    max_tokens: int  # clamped
    tokens: int  # prompt + max_tokens
    cost_micro: int
    periods: Periods
    keys: tuple[str, str, str]  # the store's counters: user day, user month, global month
    turn_id: str | None = None
    closed: bool = field(default=False, compare=False)
    # A held() block has taken it over and closes it (perhaps later, see quota.guard).
    owned: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class Settlement:
    prompt_tokens: int
    completion_tokens: int
    cost_micro: int
    estimated: bool

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# What a store answers to a reservation.
@dataclass(frozen=True)
class Reserved:
    periods: Periods
    keys: tuple[str, str, str]


@dataclass(frozen=True)
class NeedsLoad:
    """Some counters are gone (a Redis restart, an eviction): rebuild them from the ledger."""

    periods: Periods
    missing: tuple[Scope, ...]


@dataclass(frozen=True)
class OverLimit:
    limit: Limit
    periods: Periods


@dataclass(frozen=True)
class Throttled:
    retry_after_ms: int


Outcome = Reserved | NeedsLoad | OverLimit | Throttled


@dataclass(frozen=True)
class Counter:
    used: int  # settled
    held: int  # reserved and not yet settled
    loaded: bool


@dataclass(frozen=True)
class Snapshot:
    periods: Periods
    user_day: Counter
    user_month: Counter
    global_month: Counter


class QuotaRefused(Exception):
    """A call that must not happen; status and code are what the client sees."""

    status = 402
    code = "quota_exceeded"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def details(self) -> dict[str, object]:
        """Machine-readable facts beside code and message."""
        return {}


class QuotaExceeded(QuotaRefused):
    status = 402
    code = "quota_exceeded"

    def __init__(self, limit: Limit, resets_at: datetime) -> None:
        what = {
            "daily": "your daily token quota",
            "monthly": "your monthly token quota",
            "spend_cap": "the service's monthly spending cap",
        }[limit]
        super().__init__(
            f"This would exceed {what}; it resets at {resets_at.isoformat()}.",
        )
        self.limit = limit
        self.resets_at = resets_at

    def details(self) -> dict[str, object]:
        return {"limit": self.limit, "resets_at": self.resets_at.isoformat()}


class RateLimited(QuotaRefused):
    status = 429
    code = "rate_limited"

    def __init__(self, retry_after_ms: int) -> None:
        seconds = max(1, -(-retry_after_ms // 1000))
        super().__init__(
            f"Too many requests; try again in {seconds} s.", headers={"Retry-After": str(seconds)}
        )
        self.retry_after = seconds

    def details(self) -> dict[str, object]:
        return {"retry_after": self.retry_after}


class QuotaUnavailable(QuotaRefused):
    status = 503
    code = "quota_unavailable"

    def __init__(self, reason: str = "the quota store cannot be reached") -> None:
        super().__init__(f"Usage accounting is unavailable ({reason}); no model call was made.")


class ModelNotPriced(QuotaRefused):
    status = 422
    code = "unpriced_model"

    def __init__(self, model: str) -> None:
        super().__init__(f"Model {model!r} has no configured price and cannot be used.")
        self.model = model
