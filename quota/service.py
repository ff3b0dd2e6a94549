"""Reserve, then settle: the one way a model call is accounted for.

reserve() holds the call's worst case (estimated prompt tokens plus the clamped max_tokens,
and its cost) against every budget at once, or refuses and holds nothing. settle() charges
what the provider reported (or an estimate, for a stream cut before usage arrived) and
returns the rest; release() returns all of it. Each happens at most once per reservation.
A settlement is written to the ledger before the counters, so counters rebuilt from the
ledger after Redis lost them never miss a settled call.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import asyncpg
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random

from quota.core import (
    Limits,
    ModelNotPriced,
    NeedsLoad,
    OverLimit,
    Periods,
    QuotaExceeded,
    QuotaRefused,
    QuotaUnavailable,
    RateLimited,
    Reservation,
    Reserved,
    Scope,
    Settlement,
    Snapshot,
    Throttled,
)
from quota.ledger import Entry, Ledger
from quota.memory_store import MemoryStore
from quota.prices import ModelPrice, Prices, UnpricedModel

log = logging.getLogger("wattwise.quota")


class Store(Protocol):
    async def admit(self, *, user: UUID, aid: str, limits: Limits) -> Throttled | None: ...

    async def reserve(
        self,
        *,
        user: UUID,
        rid: str,
        tokens: int,
        cost: int,
        limits: Limits,
        rate_limited: bool = True,
    ) -> Reserved | NeedsLoad | OverLimit | Throttled: ...

    async def load(self, *, user: UUID, periods: Periods, scope: Scope, used: int) -> None: ...

    async def settle(
        self,
        *,
        rid: str,
        keys: tuple[str, str, str],
        held: tuple[int, int],
        tokens: int,
        cost: int,
    ) -> bool: ...

    async def snapshot(self, *, user: UUID) -> Snapshot: ...


class QuotaObserver(Protocol):
    """Told of every settlement and every refusal (the service's metrics)."""

    def settled(
        self, *, model: str, prompt_tokens: int, completion_tokens: int, cost_micro: int
    ) -> None: ...

    def refused(self, reason: str) -> None: ...


def refusal_reason(exc: QuotaRefused) -> str:
    """daily, monthly, spend_cap, rate_limited, unavailable or unpriced_model."""
    if isinstance(exc, QuotaExceeded):
        return exc.limit
    return {
        RateLimited: "rate_limited",
        QuotaUnavailable: "unavailable",
        ModelNotPriced: "unpriced_model",
    }.get(type(exc), exc.code)


@dataclass(frozen=True)
class Remaining:
    used: int
    held: int
    allowed: int
    resets_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "used": self.used,
            "reserved": self.held,
            "limit": self.allowed,
            "remaining": max(0, self.allowed - self.used - self.held),
            "resets_at": self.resets_at.isoformat(),
        }


class QuotaService:
    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        *,
        prices: Prices,
        limits: Limits,
        observer: QuotaObserver | None = None,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.prices = prices
        self.limits = limits
        self.observer = observer
        # Counts turns while the store cannot be reached (see admit()).
        self._local = MemoryStore()

    async def _load(self, user: UUID, need: NeedsLoad) -> None:
        for scope in need.missing:
            if scope == "user_day":
                used = await self.ledger.user_tokens(user, day=need.periods.day)
            elif scope == "user_month":
                used = await self.ledger.user_tokens(user, month=need.periods.month)
            else:
                used = await self.ledger.month_spend(need.periods.month)
            await self.store.load(user=user, periods=need.periods, scope=scope, used=used)

    def _price(self, model: str) -> ModelPrice:
        try:
            return self.prices.of(model)
        except UnpricedModel:
            raise ModelNotPriced(model) from None

    async def admit(self, user_id: UUID) -> None:
        """One slot of the user's rate limit, for a turn, whatever the turn then does (a
        model answer, a proposal, smalltalk); RateLimited when there is none. A turn that was
        admitted reserves its model rounds with rate_limited=False: it is counted once.

        A store that cannot be reached does not stop turns that need no model (their limit
        is there to protect the service, not a budget): this process's own schedule counts
        them meanwhile, so the limit still holds per process. Model calls still fail closed
        at their reservation."""
        aid = secrets.token_hex(12)
        try:
            throttled = await self.store.admit(user=user_id, aid=aid, limits=self.limits)
        except QuotaUnavailable as exc:
            log.warning("rate limit counted in process: the quota store failed (%s)", exc)
            throttled = await self._local.admit(user=user_id, aid=aid, limits=self.limits)
        if throttled is not None:
            if self.observer is not None:
                self.observer.refused("rate_limited")
            raise RateLimited(throttled.retry_after_ms)

    async def reserve(
        self,
        *,
        user_id: UUID,
        household_id: UUID | None,
        model: str,
        prompt_tokens: int,
        max_tokens: int | None = None,
        turn_id: str | None = None,
        rate_limited: bool = True,
    ) -> Reservation:
        """The call's worst case, held against every budget; QuotaRefused (and nothing held)
        when any budget would be exceeded. With `rate_limited`, the call also takes a slot
        of the user's rate limit; a turn's rounds do not (the turn took one: admit())."""
        try:
            price = self._price(model)
            completion = self.prices.clamp(model, max_tokens)
            tokens = prompt_tokens + completion
            cost = price.cost_micro(prompt_tokens, completion)
            rid = secrets.token_hex(12)
            for _ in range(3):  # a load, then the reservation; a period may roll over between
                outcome = await self.store.reserve(
                    user=user_id,
                    rid=rid,
                    tokens=tokens,
                    cost=cost,
                    limits=self.limits,
                    rate_limited=rate_limited,
                )
                if isinstance(outcome, NeedsLoad):
                    try:
                        await self._load(user_id, outcome)
                    except (OSError, asyncpg.PostgresError) as exc:
                        raise QuotaUnavailable(f"the usage ledger cannot be read: {exc}") from exc
                    continue
                if isinstance(outcome, OverLimit):
                    raise QuotaExceeded(outcome.limit, outcome.periods.resets_at(outcome.limit))
                if isinstance(outcome, Throttled):
                    raise RateLimited(outcome.retry_after_ms)
                return Reservation(
                    id=rid,
                    user_id=user_id,
                    household_id=household_id,
                    model=model,
                    prompt_tokens=prompt_tokens,
                    max_tokens=completion,
                    tokens=tokens,
                    cost_micro=cost,
                    periods=outcome.periods,
                    keys=outcome.keys,
                    turn_id=turn_id,
                )
            raise QuotaUnavailable("the counters could not be rebuilt")
        except QuotaRefused as exc:
            if self.observer is not None:
                self.observer.refused(refusal_reason(exc))
            raise

    async def settle(
        self,
        reservation: Reservation,
        *,
        prompt_tokens: int,
        completion_tokens: int,
        estimated: bool = False,
    ) -> Settlement | None:
        """Charge what the call used; None if the reservation was already closed."""
        if reservation.closed:
            return None
        reservation.closed = True
        price = self.prices.of(reservation.model)
        settlement = Settlement(
            prompt_tokens,
            completion_tokens,
            price.cost_micro(prompt_tokens, completion_tokens),
            estimated,
        )
        await self.ledger.append(
            Entry(
                reservation_id=reservation.id,
                turn_id=reservation.turn_id,
                user_id=reservation.user_id,
                household_id=reservation.household_id,
                model=reservation.model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost_micro=settlement.cost_micro,
                estimated=estimated,
                day=reservation.periods.day,
                month=reservation.periods.month,
            )
        )
        await self._close(reservation, settlement.tokens, settlement.cost_micro)
        if self.observer is not None:
            self.observer.settled(
                model=reservation.model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost_micro=settlement.cost_micro,
            )
        return settlement

    async def _close(self, reservation: Reservation, tokens: int, cost: int) -> None:
        # A blip must not leave a reservation held for its whole lease: retry briefly. The
        # store's done marker makes a repeated step harmless.
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(QuotaUnavailable),
            stop=stop_after_attempt(3),
            wait=wait_random(0.05, 0.2),
            reraise=True,
        ):
            with attempt:
                await self.store.settle(
                    rid=reservation.id,
                    keys=reservation.keys,
                    held=(reservation.tokens, reservation.cost_micro),
                    tokens=tokens,
                    cost=cost,
                )

    async def release(self, reservation: Reservation) -> None:
        """Return the whole reservation: the call was never made."""
        if reservation.closed:
            return
        reservation.closed = True
        await self._close(reservation, 0, 0)

    async def usage(self, user_id: UUID, *, spend: bool = False) -> dict[str, Any]:
        """The user's tokens today and this month, used, reserved and remaining; with
        `spend`, also the deployment's spend this month against the cap."""
        snap = await self.store.snapshot(user=user_id)
        p = snap.periods
        # A counter not in the store (nothing reserved since Redis lost it) is the ledger's.
        day, month = snap.user_day, snap.user_month
        day_used = day.used if day.loaded else await self.ledger.user_tokens(user_id, day=p.day)
        month_used = (
            month.used if month.loaded else await self.ledger.user_tokens(user_id, month=p.month)
        )
        report: dict[str, Any] = {
            "periods": {"day": p.day.isoformat(), "month": p.month.isoformat()[:7], "tz": "UTC"},
            "daily_tokens": Remaining(
                day_used, day.held, self.limits.daily_tokens, p.day_end
            ).public(),
            "monthly_tokens": Remaining(
                month_used, month.held, self.limits.monthly_tokens, p.month_end
            ).public(),
            "rate_per_minute": self.limits.rate_per_minute,
        }
        if spend:
            spent = snap.global_month.used
            if not snap.global_month.loaded:
                spent = await self.ledger.month_spend(p.month)
            cap, held = self.limits.spend_cap_micro, snap.global_month.held
            report["monthly_spend"] = {
                "used_micro": spent,
                "reserved_micro": held,
                "cap_micro": cap,
                "remaining_micro": max(0, cap - spent - held),
                "resets_at": p.month_end.isoformat(),
            }
        return report
