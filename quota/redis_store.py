"""The quota store in Redis: each operation is one Lua script, so a reservation is checked
against every budget and the rate limit, and applied, atomically; Redis TIME is the clock
of every instance.

Keys (prefix P, U a user id, D a UTC day as YYYYMMDD, M a month as YYYYMM, R a
reservation id):
  P:ud:U:D  P:um:U:M  P:gm:M   counters (hashes): used, held, loaded
  P:leases                     sorted set of live reservations (id|counters|amounts) by
                               lease deadline (ms); past it, one is purged, stops counting
  P:rl:U                       the user's GCRA schedule (theoretical arrival time, us)
  P:res:R                      reservation R was made (its day), until settled or its lease
                               ends: the same reservation again changes nothing
  P:adm:A                      admission A (one turn's rate-limit slot) was granted
  P:done:R                     settled or released: a second call changes nothing

Key names are derived inside the scripts from TIME, so a single Redis (not a cluster) is
assumed. A counter hash without `loaded` was lost (restart, eviction): the reservation
script then answers "load" and the service rebuilds it from the ledger first.

Every script is idempotent by its id (the markers above, `loaded`, or because it only
reads), so a batch whose connection dropped may be sent once more: see _Batcher._send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import date
from typing import Any, cast
from uuid import UUID

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript as Script
from redis.exceptions import NoScriptError
from redis.maint_notifications import MaintNotificationsConfig
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

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
    QuotaUnavailable,
    Reserved,
    Scope,
    Snapshot,
    Throttled,
    counter_keys,
)

READ_ATTEMPTS = 3

_CIVIL = """
local function civil(days)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
                          - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
end
local t = redis.call('TIME')
local now_s = tonumber(t[1])
local now_us = now_s * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
local today = math.floor(now_s / 86400)
local y, m, d = civil(today)
local day_id = string.format('%04d%02d%02d', y, m, d)
local month_id = string.format('%04d%02d', y, m)
local ny, nm = y, m + 1
if nm == 13 then ny, nm = y + 1, 1 end
local day_end = (today + 1) * 86400
local month_end = days_from_civil(ny, nm, 1) * 86400
"""

# Reservations whose lease has run out (their process died) stop counting: at most a few
# per call, oldest first, so one call never does unbounded work. A lease's member names
# everything needed to undo it: id|key1|key2|key3|tokens|cost.
_PURGE = """
local function purge(p)
  local expired = redis.call('ZRANGEBYSCORE', p .. ':leases', '-inf', now_ms, 'LIMIT', 0, 16)
  for _, member in ipairs(expired) do
    local f = {}
    for part in string.gmatch(member, '[^|]+') do table.insert(f, part) end
    redis.call('HINCRBY', f[2], 'held', -tonumber(f[5]))
    redis.call('HINCRBY', f[3], 'held', -tonumber(f[5]))
    redis.call('HINCRBY', f[4], 'held', -tonumber(f[6]))
    redis.call('ZREM', p .. ':leases', member)
  end
end
"""

# The user's GCRA schedule: `admitted` is false (and `wait_ms` how long) when the request
# comes too early; else `take()` moves the schedule on by one request.
_GCRA = """
local function gcra(rl, emission, tolerance)
  local tat = tonumber(redis.call('GET', rl) or '0')
  if tat < now_us then tat = now_us end
  if tat - now_us > tolerance then
    return false, math.ceil((tat - now_us - tolerance) / 1000)
  end
  return true, function()
    -- %.0f: a microsecond clock has 16 digits, more than tostring() keeps.
    redis.call('SET', rl, string.format('%.0f', tat + emission), 'PX',
               math.ceil((tat + emission - now_us) / 1000))
  end
end
"""

# ARGV: prefix, user, reservation id, tokens, cost, the limits as one string (one
# argument to encode per call): "daily monthly cap emission_us tolerance_us lease_ms grace_s",
# and 1 to take a slot of the user's rate limit (0: the turn took it, see _ADMIT).
# Replies are one string: ok:D, load:D:<missing scopes>, rate:D:<retry ms>, limit:D:<name>.
# The same reservation id a second time answers what the first did, changing nothing.
_RESERVE = (
    _CIVIL
    + _PURGE
    + _GCRA
    + """
local p, user, rid = ARGV[1], ARGV[2], ARGV[3]
local mark = p .. ':res:' .. rid
local made = redis.call('GET', mark)
if made then return 'ok:' .. made end
local tokens, cost = tonumber(ARGV[4]), tonumber(ARGV[5])
local cfg = {}
for v in string.gmatch(ARGV[6], '%S+') do table.insert(cfg, tonumber(v)) end
local limits = {cfg[1], cfg[2], cfg[3]}
local emission, tolerance, lease_ms, grace = cfg[4], cfg[5], cfg[6], cfg[7]
local keys = {p .. ':ud:' .. user .. ':' .. day_id, p .. ':um:' .. user .. ':' .. month_id,
              p .. ':gm:' .. month_id}
local amounts = {tokens, tokens, cost}
local names = {'daily', 'monthly', 'spend_cap'}
purge(p)
local states, missing = {}, {}
for i, key in ipairs(keys) do
  states[i] = redis.call('HMGET', key, 'used', 'held', 'loaded')
  if states[i][3] ~= '1' then table.insert(missing, tostring(i)) end
end
if #missing > 0 then return 'load:' .. day_id .. ':' .. table.concat(missing, ',') end
local admitted, take = true, nil
if ARGV[7] == '1' then
  admitted, take = gcra(p .. ':rl:' .. user, emission, tolerance)
  if not admitted then return 'rate:' .. day_id .. ':' .. string.format('%d', take) end
end
for i = 1, 3 do
  if (tonumber(states[i][1]) or 0) + (tonumber(states[i][2]) or 0) + amounts[i] > limits[i] then
    return 'limit:' .. day_id .. ':' .. names[i]
  end
end
-- The counters were given their expiry when they were loaded.
for i, key in ipairs(keys) do redis.call('HINCRBY', key, 'held', amounts[i]) end
local lease = table.concat({rid, keys[1], keys[2], keys[3], tokens, cost}, '|')
redis.call('ZADD', p .. ':leases', now_ms + lease_ms, lease)
redis.call('SET', mark, day_id, 'PX', lease_ms)
if take then take() end
return 'ok:' .. day_id
"""
)

# One slot of the user's rate limit, for a turn (whatever it does). ARGV: prefix, user,
# admission id, emission_us, tolerance_us. Replies 0 (admitted) or the ms to wait; the same
# admission id a second time answers 0 and takes nothing.
_ADMIT = (
    _CIVIL
    + _GCRA
    + """
local p, user, aid = ARGV[1], ARGV[2], ARGV[3]
local mark = p .. ':adm:' .. aid
if redis.call('EXISTS', mark) == 1 then return 0 end
local admitted, take = gcra(p .. ':rl:' .. user, tonumber(ARGV[4]), tonumber(ARGV[5]))
if not admitted then return take end
take()
redis.call('SET', mark, '1', 'PX', 60000)
return 0
"""
)

# KEYS: the three counters, the done marker. ARGV: prefix, reservation id, tokens and cost
# reserved, tokens and cost used, marker ttl. Settling and releasing are the same step;
# releasing uses nothing.
_SETTLE = """
if not redis.call('SET', KEYS[4], '1', 'NX', 'EX', tonumber(ARGV[7])) then return 0 end
local p, rid = ARGV[1], ARGV[2]
local held = {tonumber(ARGV[3]), tonumber(ARGV[3]), tonumber(ARGV[4])}
local used = {tonumber(ARGV[5]), tonumber(ARGV[5]), tonumber(ARGV[6])}
local lease = table.concat({rid, KEYS[1], KEYS[2], KEYS[3], ARGV[3], ARGV[4]}, '|')
redis.call('DEL', p .. ':res:' .. rid)
if redis.call('ZREM', p .. ':leases', lease) == 1 then
  -- Still leased, so its counters exist and are loaded.
  for i = 1, 3 do
    redis.call('HINCRBY', KEYS[i], 'held', -held[i])
    if used[i] > 0 then redis.call('HINCRBY', KEYS[i], 'used', used[i]) end
  end
else
  -- Lapsed, or Redis lost it: a counter that was lost is rebuilt from the ledger, which
  -- already has this call.
  for i = 1, 3 do
    if used[i] > 0 and redis.call('HGET', KEYS[i], 'loaded') == '1' then
      redis.call('HINCRBY', KEYS[i], 'used', used[i])
    end
  end
end
return 1
"""

# KEYS: one counter. ARGV: used (from the ledger), expire-at (unix s).
_LOAD = """
if redis.call('HGET', KEYS[1], 'loaded') == '1' then return 0 end
redis.call('HSET', KEYS[1], 'used', ARGV[1], 'loaded', '1')
redis.call('EXPIREAT', KEYS[1], tonumber(ARGV[2]))
return 1
"""

# ARGV: prefix, user: the caller's counters, after a purge.
_SNAPSHOT = (
    _CIVIL
    + _PURGE
    + """
local p, user = ARGV[1], ARGV[2]
local keys = {p .. ':ud:' .. user .. ':' .. day_id, p .. ':um:' .. user .. ':' .. month_id,
              p .. ':gm:' .. month_id}
purge(p)
local out = {day_id, month_id}
for _, key in ipairs(keys) do
  local state = redis.call('HMGET', key, 'used', 'held', 'loaded')
  table.insert(out, state[1] or '0')
  table.insert(out, state[2] or '0')
  table.insert(out, state[3] or '0')
end
return out
"""
)


def _periods(day_id: bytes | str) -> Periods:
    day = _text(day_id)
    d = date(int(day[:4]), int(day[4:6]), int(day[6:8]))
    return Periods(d, d.replace(day=1))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class _Call:
    script: Script
    keys: list[str]
    args: list[Any]
    future: asyncio.Future[Any]
    # Undoes what the call did when its caller is gone (cancelled) before the reply came.
    orphan: Callable[[Any], Coroutine[Any, Any, None]] | None = None


class _Batcher:
    """Script calls made while a batch is in flight go out together in the next one: one
    pipelined round trip (not a transaction; each script is atomic on its own). With one
    caller nothing waits; with many, the round trips no longer cap the throughput."""

    MAX_BATCH = 256

    def __init__(self, client: aioredis.Redis, timeout: float) -> None:
        self._client = client
        self.timeout = timeout
        self._pending: list[_Call] = []
        self._task: asyncio.Task[None] | None = None
        self._orphans: set[asyncio.Task[None]] = set()

    async def call(
        self,
        script: Script,
        keys: list[str],
        args: list[Any],
        orphan: Callable[[Any], Coroutine[Any, Any, None]] | None = None,
    ) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(_Call(script, keys, args, future, orphan))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        try:
            return await future
        except asyncio.CancelledError:
            # The reply may have come in just before the cancellation reached this caller.
            answered = future.done() and not future.cancelled() and future.exception() is None
            if orphan is not None and answered:
                self._adopt(orphan(future.result()))
            raise

    def _adopt(self, undo: Coroutine[Any, Any, None]) -> None:
        """Run `undo` in its own task: undoing is another call through this batcher, which
        its loop must be free to send."""
        task = asyncio.create_task(undo)
        self._orphans.add(task)
        task.add_done_callback(self._orphans.discard)

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self.MAX_BATCH]
            del self._pending[: self.MAX_BATCH]
            try:
                replies = await self._send(batch)
            except Exception as exc:  # the connection: every caller of the batch hears it
                for call in batch:
                    if not call.future.done():
                        call.future.set_exception(exc)
                continue
            for call, reply in zip(batch, replies, strict=True):
                if call.future.cancelled():
                    if call.orphan is not None and not isinstance(reply, Exception):
                        self._adopt(call.orphan(reply))
                elif isinstance(reply, Exception):
                    call.future.set_exception(reply)
                else:
                    call.future.set_result(reply)

    async def _send(self, batch: list[_Call]) -> list[Any]:
        # One deadline for the whole round trip, a second sending included; a per-read
        # socket timeout would arm a timer for every reply in the batch.
        async with asyncio.timeout(self.timeout):
            try:
                replies = await self._pipeline(batch)
            except redis.exceptions.ConnectionError:
                # The connection broke (the server closed it, a reset): send the batch once
                # more, on a new connection (redis-py disconnected the broken one). The first
                # sending may or may not have run; either way this one changes nothing it
                # did, because every script here is idempotent by its id (see the module
                # docstring). A timeout is not sent again: Redis may still be busy with it.
                replies = await self._pipeline(batch)
            lost = [n for n, r in enumerate(replies) if isinstance(r, NoScriptError)]
            if lost:  # Redis restarted and forgot the scripts: load them, send those again
                for script in {id(batch[n].script): batch[n].script for n in lost}.values():
                    await self._client.script_load(script.script)
                again = await self._pipeline([batch[n] for n in lost])
                for n, reply in zip(lost, again, strict=True):
                    replies[n] = reply
            return replies

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for call in batch:
            pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
        return list(await pipe.execute(raise_on_error=False))


class RedisStore:
    """Quota counters in Redis; every Redis failure is QuotaUnavailable (fail closed)."""

    def __init__(
        self, client: aioredis.Redis, *, prefix: str = "ww:q", timeout: float = 5.0
    ) -> None:
        self._client = client
        self.prefix = prefix
        self._batcher = _Batcher(client, timeout)
        self._configs: dict[Limits, str] = {}
        self._reserve = client.register_script(_RESERVE)
        self._admit = client.register_script(_ADMIT)
        self._settle = client.register_script(_SETTLE)
        self._load = client.register_script(_LOAD)
        self._snapshot = client.register_script(_SNAPSHOT)

    async def _run(
        self,
        script: Script,
        keys: list[str],
        args: list[Any],
        orphan: Callable[[Any], Coroutine[Any, Any, None]] | None = None,
    ) -> Any:
        try:
            return await self._batcher.call(script, keys, args, orphan)
        except (OSError, TimeoutError, redis.exceptions.ConnectionError) as exc:
            raise QuotaUnavailable(type(exc).__name__) from exc

    async def admit(self, *, user: UUID, aid: str, limits: Limits) -> Throttled | None:
        reply = await self._run(
            self._admit,
            [],
            [self.prefix, str(user), aid, limits.emission_us, limits.tolerance_us],
        )
        wait_ms = int(reply)
        return Throttled(wait_ms) if wait_ms else None

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
        config = self._configs.get(limits)
        if config is None:
            config = self._configs[limits] = " ".join(
                str(v)
                for v in (
                    limits.daily_tokens,
                    limits.monthly_tokens,
                    limits.spend_cap_micro,
                    limits.emission_us,
                    limits.tolerance_us,
                    int(limits.lease.total_seconds() * 1000),
                    int(GRACE.total_seconds()),
                )
            )

        async def release(reply: Any) -> None:
            # Reserved for a caller that is gone: give it back at once, not at lease end.
            status, day = _text(reply).split(":")[:2]
            if status == "ok":
                await self.settle(
                    rid=rid,
                    keys=counter_keys(self.prefix, user, _periods(day)),
                    held=(tokens, cost),
                    tokens=0,
                    cost=0,
                )

        reply = await self._run(
            self._reserve,
            [],
            [self.prefix, str(user), rid, tokens, cost, config, int(rate_limited)],
            release,
        )
        status, day, *rest = _text(reply).split(":")
        periods = _periods(day)
        if status == "ok":
            return Reserved(periods, counter_keys(self.prefix, user, periods))
        if status == "load":
            return NeedsLoad(periods, tuple(SCOPES[int(i) - 1] for i in rest[0].split(",")))
        if status == "rate":
            return Throttled(int(rest[0]))
        if status != "limit" or rest[0] not in ("daily", "monthly", "spend_cap"):
            raise QuotaUnavailable(f"unexpected reply {reply!r}")
        return OverLimit(cast("Limit", rest[0]), periods)

    async def load(self, *, user: UUID, periods: Periods, scope: Scope, used: int) -> None:
        end = periods.day_end if scope == "user_day" else periods.month_end
        expire_at = int((end + GRACE).timestamp())
        await self._run(
            self._load,
            [counter_keys(self.prefix, user, periods)[SCOPES.index(scope)]],
            [used, expire_at],
        )

    async def settle(
        self,
        *,
        rid: str,
        keys: tuple[str, str, str],
        held: tuple[int, int],
        tokens: int,
        cost: int,
    ) -> bool:
        marker = f"{self.prefix}:done:{rid}"
        ttl = int(GRACE.total_seconds()) + 40 * 86400
        done = await self._run(
            self._settle, [*keys, marker], [self.prefix, rid, *held, tokens, cost, ttl]
        )
        return bool(done)

    async def snapshot(self, *, user: UUID) -> Snapshot:
        """The user's counters. A read: a dropped connection is tried again (three tries,
        jittered), where reserve and settle, which write, are not."""
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(READ_ATTEMPTS),
            wait=wait_random_exponential(multiplier=0.02, max=0.2),
            retry=retry_if_exception_type(QuotaUnavailable),
            reraise=True,
        ):
            with attempt:
                reply = await self._run(self._snapshot, [], [self.prefix, str(user)])
        values = [_text(v) for v in reply]
        counters = [
            Counter(int(values[i]), int(values[i + 1]), values[i + 2] == "1") for i in (2, 5, 8)
        ]
        return Snapshot(_periods(values[0]), *counters)


def connect(
    url: str, *, max_connections: int = 64, timeout: float = 5.0, ssl_ca: str | None = None
) -> aioredis.Redis:
    """A Redis client whose callers wait (up to `timeout` s) for a free connection when all
    are busy, rather than failing: a burst of turns must queue, not be refused. Connecting
    is bounded here; each round trip is bounded by its caller (RedisStore: one deadline
    per batch). A rediss:// URL speaks TLS, verifying the server against `ssl_ca` (default:
    the system's CAs).

    A connection the server closed while it sat in the pool (CLIENT KILL, the server's idle
    `timeout`) is replaced before anything is sent on it: the pool finds end-of-file on its
    socket when handing it out and reconnects (redis.asyncio ConnectionPool.ensure_connection).
    redis-py skips that check when maintenance notifications are enabled, which they are by
    default ("auto", under RESP3, its default protocol): a killed connection was then used
    and the next reservation failed. This service talks to one Redis, with no endpoint that
    moves under it, so they are off. A connection that went quiet without closing (no FIN
    came) answers PING before use once idle 30 s. redis-py itself never sends a command
    again (no retries): RedisStore decides what may be sent twice."""
    tls: dict[str, Any] = {"ssl_ca_certs": ssl_ca} if ssl_ca and url.startswith("rediss:") else {}
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_connect_timeout=timeout,
        socket_timeout=None,  # not per reply: see above
        health_check_interval=30,  # a connection idle for 30 s answers PING before use
        retry=Retry(NoBackoff(), 0),
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
        **tls,
    )
    return aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it
