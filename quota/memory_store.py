"""The quota store in process memory: the same operations and the same semantics as the
Redis store, for `wattwise demo` and single-process runs with no Redis. Each operation
runs without awaiting, so within one event loop it is as atomic as a Lua script."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from quota.core import (
    GRACE,
    SCOPES,
    Counter,
    Limit,
    Limits,
    NeedsLoad,
    Outcome,
    OverLimit,
    Periods,
    Reserved,
    Scope,
    Snapshot,
    Throttled,
    counter_keys,
)


@dataclass
class _Scope:
    used: int = 0
    held: int = 0
    loaded: bool = False
    reservations: dict[str, tuple[int, int]] = field(default_factory=dict)  # amount, deadline
    expires_at: float = 0.0  # unix s

    def purge(self, now_ms: int) -> None:
        for rid, (amount, deadline) in list(self.reservations.items()):
            if deadline <= now_ms:
                self.held -= amount
                del self.reservations[rid]


class MemoryStore:
    def __init__(self, *, clock: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock  # nanoseconds since the epoch
        self._scopes: dict[str, _Scope] = {}
        self._schedules: dict[UUID, tuple[int, int]] = {}  # user -> (tat us, expires us)
        self._done: dict[str, float] = {}

    def _now(self) -> tuple[int, int, Periods]:
        now_ns = self._clock()
        now_us = now_ns // 1000
        return now_us, now_us // 1000, Periods.at(datetime.fromtimestamp(now_ns / 1e9, UTC))

    def _scope(self, key: str, now_s: float) -> _Scope:
        scope = self._scopes.get(key)
        if scope is None or scope.expires_at <= now_s:
            scope = self._scopes[key] = _Scope()
        return scope

    def _expire(self, now_s: float) -> None:
        for key in [k for k, s in self._scopes.items() if s.expires_at and s.expires_at <= now_s]:
            del self._scopes[key]
        for rid in [r for r, at in self._done.items() if at <= now_s]:
            del self._done[rid]

    def _gcra(self, user: UUID, now_us: int, limits: Limits) -> tuple[int, int]:
        """The user's schedule now, and how long (ms) a request must wait (0: it may go)."""
        tat, _ = self._schedules.get(user, (0, 0))
        tat = max(tat, now_us)
        if tat - now_us > limits.tolerance_us:
            return tat, -(-(tat - now_us - limits.tolerance_us) // 1000)
        return tat, 0

    def _take(self, user: UUID, tat: int, limits: Limits) -> None:
        self._schedules[user] = (tat + limits.emission_us, tat + limits.emission_us)

    async def admit(self, *, user: UUID, aid: str, limits: Limits) -> Throttled | None:
        now_us, _, _ = self._now()
        tat, wait_ms = self._gcra(user, now_us, limits)
        if wait_ms:
            return Throttled(wait_ms)
        self._take(user, tat, limits)
        return None

    async def reserve(
        self,
        *,
        user: UUID,
        rid: str,
        tokens: int,
        cost: int,
        limits: Limits,
        rate_limited: bool = True,
    ) -> Outcome:
        now_us, now_ms, periods = self._now()
        now_s = now_us / 1e6
        self._expire(now_s)
        keys = counter_keys("mem", user, periods)
        scopes = [self._scope(k, now_s) for k in keys]
        missing = tuple(
            name for name, scope in zip(SCOPES, scopes, strict=True) if not scope.loaded
        )
        if missing:
            return NeedsLoad(periods, missing)
        for scope in scopes:
            scope.purge(now_ms)
        tat, wait_ms = self._gcra(user, now_us, limits)
        if rate_limited and wait_ms:
            return Throttled(wait_ms)
        amounts = (tokens, tokens, cost)
        caps = (limits.daily_tokens, limits.monthly_tokens, limits.spend_cap_micro)
        names: tuple[Limit, ...] = ("daily", "monthly", "spend_cap")
        for scope, amount, cap, name in zip(scopes, amounts, caps, names, strict=True):
            if scope.used + scope.held + amount > cap:
                return OverLimit(name, periods)
        deadline = now_ms + int(limits.lease.total_seconds() * 1000)
        ends = (periods.day_end, periods.month_end, periods.month_end)
        for scope, amount, end in zip(scopes, amounts, ends, strict=True):
            scope.held += amount
            scope.reservations[rid] = (amount, deadline)
            scope.expires_at = (end + GRACE).timestamp()
        if rate_limited:
            self._take(user, tat, limits)
        return Reserved(periods, keys)

    async def load(self, *, user: UUID, periods: Periods, scope: Scope, used: int) -> None:
        key = counter_keys("mem", user, periods)[SCOPES.index(scope)]
        now_s = self._clock() / 1e9
        state = self._scope(key, now_s)
        if state.loaded:
            return
        end = periods.day_end if scope == "user_day" else periods.month_end
        state.used, state.loaded, state.expires_at = used, True, (end + GRACE).timestamp()

    async def settle(
        self,
        *,
        rid: str,
        keys: tuple[str, str, str],
        held: tuple[int, int],
        tokens: int,
        cost: int,
    ) -> bool:
        now_s = self._clock() / 1e9
        if rid in self._done:
            return False
        self._done[rid] = now_s + GRACE.total_seconds() + 40 * 86400
        for key, amount in zip(keys, (tokens, tokens, cost), strict=True):
            scope = self._scopes.get(key)
            if scope is None:
                continue
            leased = scope.reservations.pop(rid, None)
            if leased is not None:
                scope.held -= leased[0]
            if amount > 0 and scope.loaded:
                scope.used += amount
        return True

    async def snapshot(self, *, user: UUID) -> Snapshot:
        _, now_ms, periods = self._now()
        counters = []
        for key in counter_keys("mem", user, periods):
            scope = self._scopes.get(key) or _Scope()
            scope.purge(now_ms)
            counters.append(Counter(scope.used, scope.held, scope.loaded))
        return Snapshot(periods, *counters)
