"""The live fan-out in one process: published updates reach the household's clients only;
a full buffer drops its client, never the publisher; signals get through a full buffer."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from agent.live import LiveHub, Update
from agent.live_routes import _apply
from agent.metrics import Metrics
from telemetry.ingest import Latest
from telemetry.live import LiveDevice


async def _drained(hub: LiveHub) -> None:
    for _ in range(100):  # the sender task runs between our awaits
        await asyncio.sleep(0)


async def test_updates_reach_the_clients_of_their_household_only() -> None:
    hub = LiveHub(None, prefix="t", buffer=8)
    mine, theirs, device = uuid4(), uuid4(), uuid4()
    now = datetime.now(UTC)
    try:
        with hub.subscribe(mine) as a, hub.subscribe(theirs) as b:
            hub.publish([Latest(mine, device, now, 42.0)])
            await _drained(hub)
            assert a.queue.get_nowait() == [Update(device, now, 42.0)]
            assert b.queue.empty()
        assert hub.subscribers == 0
    finally:
        await hub.close()


async def test_a_full_buffer_drops_its_client_and_publishing_goes_on() -> None:
    metrics = Metrics()
    hub = LiveHub(None, prefix="t", buffer=2, metrics=metrics)
    home, device = uuid4(), uuid4()
    now = datetime.now(UTC)
    try:
        with hub.subscribe(home) as slow, hub.subscribe(home) as fast:
            for n in range(5):
                hub.publish([Latest(home, device, now + timedelta(seconds=n), float(n))])
                await _drained(hub)
                fast.queue.get_nowait()  # this one keeps up
            assert slow.dropped
            assert not fast.dropped
            assert hub.subscribers == 1
        sample = metrics.registry.get_sample_value
        assert sample("wattwise_live_dropped_total", {"reason": "slow"}) == 1.0
        assert sample("wattwise_live_published_total", {"outcome": "sent"}) == 5.0
        assert sample("wattwise_live_subscribers", {}) == 0.0
    finally:
        await hub.close()


async def test_the_end_signal_gets_through_a_full_buffer() -> None:
    hub = LiveHub(None, prefix="t", buffer=1)
    home = uuid4()
    try:
        with hub.subscribe(home) as client:
            client.queue.put_nowait([])
            hub.end_all()
            assert client.queue.get_nowait() == "closed"
            assert client.queue.empty()
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
