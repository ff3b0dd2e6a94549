"""Live power fan-out: the latest readings that ingestion stored, pushed to the household's
live-stream clients in every process, through Redis pub/sub.

publish() never waits: it queues for one sender task, and drops the update when that
queue is full (live updates are ephemeral; the figures are in the database). Each process
holds one pattern subscription and merges each message into the latest readings of the
household that its clients share: one per device, the newest. A client takes them when it
is ready, so what waits for it is bounded by the household's devices however fast
readings come and however slowly it reads, and handing an update over costs the fan-out
a dictionary write and an event per client, never a wait. Without Redis the
sender hands updates straight to the local clients (one process). Pub/sub delivers at
most once: after the subscription was lost and regained, every client is told to read
the state again from the database.

Access that ends (a member or support assignment removed, a token or a user's tokens
revoked) is announced on the same subscription, on the channel `revoked`: each process
tells the affected clients to check their token and access again at once, so the end
reaches open streams in every process within the round trip of one message. The database
stays the system of record: a lost announcement is caught by the next resync.

Deliberately ours rather than a broadcast library's (encode/broadcaster): it would give
each subscriber an unbounded queue of every message, which is exactly what a slow client
must not have.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

import redis.asyncio as aioredis
import redis.exceptions

from telemetry.ingest import Latest

if TYPE_CHECKING:
    from service.metrics import Metrics

log = logging.getLogger("wattwise.live")

OUTBOX_SIZE = 10_000
PUBLISH_BATCH = 200
RECONNECT_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class Update:
    device_id: UUID
    ts: datetime
    watts: float


@dataclass(frozen=True)
class Revocation:
    """Access of `user_id` ended somewhere (in `household_id` only, when given): that user's
    clients must check their token and access again before they are sent anything more."""

    user_id: UUID
    household_id: UUID | None = None


@dataclass(eq=False)
class _Household:
    """The latest readings this process heard of for a household with clients here."""

    id: UUID
    latest: dict[UUID, Update] = field(default_factory=dict)
    subscribers: set[Subscriber] = field(default_factory=set)

    def merge(self, updates: list[Update]) -> None:
        for u in updates:
            known = self.latest.get(u.device_id)
            if known is None or u.ts > known.ts:
                self.latest[u.device_id] = u
        for subscriber in self.subscribers:
            subscriber.news = True
            subscriber.wake.set()


@dataclass(eq=False)
class Subscriber:
    """One live-stream client: `wake` is set when there is news to take, or a signal;
    `urgent` when the signal may not wait for the next event's interval."""

    household: _Household
    user_id: UUID | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    urgent: asyncio.Event = field(default_factory=asyncio.Event)
    news: bool = False  # readings arrived since the last take()
    resync: bool = False  # updates may have been lost: read the state again
    recheck: bool = False  # access may have ended: check the token and access again
    closed: bool = False  # the process is shutting down

    def take(self) -> list[Update]:
        """The household's latest readings (the newest per device) as of now."""
        self.wake.clear()
        self.news = False
        return list(self.household.latest.values())

    def signal(self, *, recheck: bool = False, closed: bool = False) -> None:
        self.recheck = self.recheck or recheck
        self.closed = self.closed or closed
        self.wake.set()
        self.urgent.set()


def _encode(updates: list[Update]) -> str:
    return json.dumps([[str(u.device_id), u.ts.isoformat(), u.watts] for u in updates])


def _decode(payload: bytes | str) -> list[Update]:
    return [
        Update(UUID(device), datetime.fromisoformat(ts), float(watts))
        for device, ts, watts in json.loads(payload)
    ]


class LiveHub:
    def __init__(
        self,
        redis_client: aioredis.Redis | None,
        *,
        prefix: str,
        metrics: Metrics | None = None,
    ) -> None:
        self._redis = redis_client
        self._prefix = f"{prefix}:live:"
        self._revoked = f"{self._prefix}revoked"
        self._origin = uuid.uuid4().hex  # this process's own announcements are applied at once
        self._metrics = metrics
        self._outbox: asyncio.Queue[tuple[UUID, list[Update]]] = asyncio.Queue(OUTBOX_SIZE)
        self._local: dict[UUID, _Household] = {}
        self._subscribers = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.subscribed = asyncio.Event()  # the pattern subscription is in place

    @property
    def subscribers(self) -> int:
        """Live-stream clients of this process now."""
        return self._subscribers

    def start(self) -> None:
        """Start the sender (and with Redis the receiver); idempotent, and done by the first
        publish() or subscribe() if nobody did it before."""
        if self._tasks or self._closed:
            return
        self._tasks.append(asyncio.create_task(self._send(), name="wattwise-live-send"))
        if self._redis is not None:
            self._tasks.append(asyncio.create_task(self._receive(), name="wattwise-live-recv"))
        else:
            self.subscribed.set()

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self.end_all()

    def end_all(self) -> None:
        """Tell every client to end its stream (the process is shutting down)."""
        for household in self._local.values():
            for subscriber in household.subscribers:
                subscriber.signal(closed=True)

    def publish(self, latest: tuple[Latest, ...] | list[Latest]) -> None:
        """Queue the moved latest readings of a stored batch, per household; never waits."""
        self.start()
        by_household: dict[UUID, list[Update]] = {}
        for item in latest:
            by_household.setdefault(item.household_id, []).append(
                Update(item.device_id, item.ts, item.watts)
            )
        for household_id, updates in by_household.items():
            try:
                self._outbox.put_nowait((household_id, updates))
            except asyncio.QueueFull:
                self._count_published("dropped")

    async def revoke(self, revocation: Revocation) -> None:
        """Have the affected clients check again, here at once and in every other process
        through Redis. A failed announcement is logged, not raised: the revocation is in
        the database already, and the other processes' streams meet it at their resync."""
        self.recheck(revocation)
        if self._redis is None:
            return
        message = json.dumps(
            {
                "origin": self._origin,
                "user_id": str(revocation.user_id),
                "household_id": str(revocation.household_id) if revocation.household_id else None,
            }
        )
        try:
            await self._redis.publish(self._revoked, message)
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning("a revocation could not be announced to other processes: %s", exc)

    def recheck(self, revocation: Revocation) -> None:
        """Tell this process's clients of the revocation's user to check again."""
        if revocation.household_id is None:
            households = list(self._local.values())
        else:
            households = [h for h in (self._local.get(revocation.household_id),) if h]
        for household in households:
            for subscriber in household.subscribers:
                if subscriber.user_id == revocation.user_id:
                    subscriber.signal(recheck=True)

    def _announced(self, payload: bytes | str) -> None:
        try:
            message = json.loads(payload)
            if message["origin"] == self._origin:
                return
            household = message["household_id"]
            revocation = Revocation(
                UUID(message["user_id"]), UUID(household) if household else None
            )
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("a revocation message is malformed: %s", exc)
            return
        self.recheck(revocation)

    @contextlib.contextmanager
    def subscribe(self, household_id: UUID, user_id: UUID | None = None) -> Iterator[Subscriber]:
        """A client of the household's live updates; `user_id`: whose stream it is, for
        revocations."""
        self.start()
        household = self._local.get(household_id)
        if household is None:
            household = self._local[household_id] = _Household(household_id)
        subscriber = Subscriber(household, user_id)
        household.subscribers.add(subscriber)
        self._subscribers += 1
        self._gauge()
        try:
            yield subscriber
        finally:
            household.subscribers.remove(subscriber)
            self._subscribers -= 1
            if not household.subscribers:
                del self._local[household_id]
            self._gauge()

    def _gauge(self) -> None:
        if self._metrics is not None:
            self._metrics.live_subscribers.set(self.subscribers)

    def _count_published(self, outcome: str, n: int = 1) -> None:
        if self._metrics is not None:
            self._metrics.live_published.labels(outcome).inc(n)

    def dispatch(self, household_id: UUID, updates: list[Update]) -> None:
        """Merge updates into the household's latest readings and wake its clients here."""
        household = self._local.get(household_id)
        if household is not None:
            household.merge(updates)

    def resync_all(self) -> None:
        for household in self._local.values():
            for subscriber in household.subscribers:
                subscriber.resync = True
                subscriber.wake.set()

    async def _send(self) -> None:
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < PUBLISH_BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            if self._redis is None:
                for household_id, updates in batch:
                    self.dispatch(household_id, updates)
                self._count_published("sent", len(batch))
                continue
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for household_id, updates in batch:
                        pipe.publish(f"{self._prefix}{household_id}", _encode(updates))
                    await pipe.execute()
                self._count_published("sent", len(batch))
            except (redis.exceptions.RedisError, OSError) as exc:
                self._count_published("failed", len(batch))
                log.warning("live updates could not be published: %s", exc)

    async def _receive(self) -> None:
        assert self._redis is not None
        failures = 0
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(f"{self._prefix}*")
                if failures:
                    log.info("live subscription restored", extra={"event": "live_resubscribed"})
                    self.resync_all()
                failures = 0
                self.subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    channel = message["channel"]
                    name = channel.decode() if isinstance(channel, bytes) else channel
                    if name == self._revoked:
                        self._announced(message["data"])
                        continue
                    try:
                        household_id = UUID(name[len(self._prefix) :])
                    except ValueError:
                        continue
                    if household_id not in self._local:
                        continue
                    try:
                        updates = _decode(message["data"])
                    except (ValueError, TypeError) as exc:
                        log.warning("a live message on %s is malformed: %s", name, exc)
                        continue
                    self.dispatch(household_id, updates)
            except (redis.exceptions.RedisError, OSError) as exc:
                self.subscribed.clear()
                delay = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
                failures += 1
                log.warning("live subscription lost (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(redis.exceptions.RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # untyped before redis-py 8
