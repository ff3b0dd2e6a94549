"""The live fan-out in one process: published updates reach the household's clients only,
merged to the newest per device, so a client that does not take them holds one update per
device however many come; signals wake every client."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from service.live import LiveHub, Update
from service.metrics import Metrics
from service.routes.live import _apply
from telemetry.ingest import Latest
from telemetry.live import LiveDevice


async def _sent(hub: LiveHub) -> None:
    for _ in range(100):  # the sender task runs between our awaits
        await asyncio.sleep(0)


async def test_updates_reach_the_clients_of_their_household_only() -> None:
    hub = LiveHub(None, prefix="t")
    mine, theirs, device = uuid4(), uuid4(), uuid4()
    now = datetime.now(UTC)
    try:
        with hub.subscribe(mine) as a, hub.subscribe(theirs) as b:
            hub.publish([Latest(mine, device, now, 42.0)])
            await _sent(hub)
            assert a.wake.is_set()
            assert a.take() == [Update(device, now, 42.0)]
            assert not a.wake.is_set()
            assert not b.wake.is_set()
            assert b.take() == []
        assert hub.subscribers == 0
    finally:
        await hub.close()


async def test_a_client_that_takes_nothing_holds_one_update_per_device() -> None:
    metrics = Metrics()
    hub = LiveHub(None, prefix="t", metrics=metrics)
    home, heater, fridge = uuid4(), uuid4(), uuid4()
    start = datetime.now(UTC)
    try:
        with hub.subscribe(home) as idle:
            for n in range(1000):
                at = start + timedelta(seconds=n)
                hub.publish([Latest(home, heater, at, float(n)), Latest(home, fridge, at, 1.0)])
            # An older reading arriving late never replaces a newer one.
            hub.publish([Latest(home, heater, start - timedelta(hours=1), -1.0)])
            await _sent(hub)
            taken = {u.device_id: u for u in idle.take()}
            assert len(taken) == 2
            assert taken[heater] == Update(heater, start + timedelta(seconds=999), 999.0)
        sample = metrics.registry.get_sample_value
        assert sample("wattwise_live_published_total", {"outcome": "sent"}) == 1001.0
        assert sample("wattwise_live_subscribers", {}) == 0.0
    finally:
        await hub.close()


async def test_shutdown_and_resync_wake_every_client() -> None:
    hub = LiveHub(None, prefix="t")
    home = uuid4()
    try:
        with hub.subscribe(home) as one, hub.subscribe(home) as two:
            hub.resync_all()
            assert [c.resync for c in (one, two)] == [True, True]
            assert one.wake.is_set()
            one.take()
            hub.end_all()
            assert [c.closed for c in (one, two)] == [True, True]
            assert one.wake.is_set()
    finally:
        await hub.close()


def test_a_reading_moves_a_device_forward_never_back() -> None:
    device = LiveDevice(uuid4(), "Heater", "consumer", None, None)
    state = {device.id: device}
    now = datetime.now(UTC)
    assert _apply(state, [Update(device.id, now, 5.0)])
    assert _apply(state, [Update(device.id, now - timedelta(seconds=1), 1.0)])
    assert state[device.id] == dataclasses.replace(device, ts=now, watts=5.0)
    assert not _apply(state, [Update(uuid4(), now, 1.0)])  # unknown here: read again
