"""Live streams against ingestion, on a real `wattwise serve` process with Redis.

1. Ingest with stalled clients: POST /v1/telemetry of small batches (one reading per
   device of the demo household, as a gateway sends them) from --clients connections,
   first with no live stream open (the baseline, in the same run), then with --stalled
   clients on the household's live stream that read everything (a thread drains their
   sockets), then with as many that sent their request and never read a byte (a 4 KiB
   receive buffer), beside one client that reads and times the events.
2. Fan-out delay: from sending a batch to the reading client's event that shows it.
3. What became of the stalled clients (the service's /metrics), and the service's memory.

    .venv/bin/python -m bench.live [--batches 2000] [--clients 8] [--stalled 200]

Needs DATABASE_URL (an admin connection; a scratch database is made and dropped) and
REDIS_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import selectors
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.service import Service, percentile, service_process, token
from demo.seed import seed_demo
from evals.scratch import scratch_database
from telemetry import access
from telemetry.db import connect
from telemetry.migrate import migrate


async def prepare(dsn: str) -> tuple[uuid.UUID, list[uuid.UUID], str, str]:
    """The demo household: its id, device ids, a gateway's and a resident's tokens."""
    conn = await connect(dsn)
    try:
        await migrate(conn)
        seeded = await seed_demo(conn, days=0.2)
        household = seeded.household.id
        gateway = await access.create_user(conn, email="gw@bench.test", role="gateway")
        resident = await access.create_user(conn, email="me@bench.test", role="resident")
        await access.add_member(conn, household_id=household, user_id=gateway.id, role="gateway")
        await access.add_member(conn, household_id=household, user_id=resident.id, role="owner")
        devices = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM devices WHERE household_id = $1 AND kind = 'consumer'", household
            )
        ]
    finally:
        await conn.close()
    return household, devices, token(gateway.id), token(resident.id)


async def ingest(
    url: str, bearer: str, devices: list[uuid.UUID], batches: int, clients: int, phase: int
) -> tuple[float, list[float], dict[float, float]]:
    """Post `batches` batches; requests/s, latencies (ms), and send time by the watts the
    first device reports in each batch (unique in the run, and plausible for any device)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(batches):
        queue.put_nowait(n)
    headers = {"Authorization": f"Bearer {bearer}"}
    latencies: list[float] = []
    sent: dict[float, float] = {}
    base = datetime.now(UTC)

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
            while not queue.empty():
                n = queue.get_nowait()
                ts = (base + timedelta(milliseconds=n)).isoformat()
                watts = 100 + phase + n / 10_000
                readings = [
                    {"device_id": str(d), "ts": ts, "watts": watts if i == 0 else 50.0}
                    for i, d in enumerate(devices)
                ]
                started = time.perf_counter()
                sent[watts] = started
                response = await client.post("/v1/telemetry", json={"readings": readings})
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.json()["accepted"] == len(readings), response.text

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return batches / (time.perf_counter() - started), latencies, sent


def stall(url: str, path: str, bearer: str, count: int) -> list[socket.socket]:
    """Clients that ask for the stream: blocking sockets that nobody reads unless drain()."""
    parts = urlsplit(url)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {bearer}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()
    stalled = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
        sock.sendall(request)
        stalled.append(sock)
    return stalled


def drain(sockets: list[socket.socket], stop: threading.Event) -> None:
    """Read and discard whatever the sockets receive until `stop` (in a thread)."""
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        while not stop.is_set():
            for key, _ in selector.select(timeout=0.1):
                if not key.fileobj.recv(65536):  # type: ignore[union-attr]
                    selector.unregister(key.fileobj)


async def read_live(
    url: str, path: str, bearer: str, device: uuid.UUID, seen: dict[float, float]
) -> None:
    """Record when each of the device's readings first shows in the stream."""
    async with (
        httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10, read=None)) as client,
        client.stream("GET", path, headers={"Authorization": f"Bearer {bearer}"}) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("data:") and '"devices"' in line:
                for d in json.loads(line[5:])["devices"]:
                    if d["id"] == str(device) and d["watts"] is not None:
                        seen.setdefault(d["watts"], time.perf_counter())


async def dropped(service: Service) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{service.url}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "wattwise_live_dropped_total" and sample.labels["reason"] == "slow":
                return sample.value
    return 0.0


async def main_async(args: argparse.Namespace) -> None:
    name = f"wattwise_bench_live_{os.getpid()}"
    async with scratch_database(os.environ["DATABASE_URL"], name) as dsn:
        household, devices, gateway, resident = await prepare(dsn)
        env = {
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            "WATTWISE_QUOTA_PREFIX": f"wwbench:{uuid.uuid4().hex[:8]}",
            "WATTWISE_LOG_LEVEL": "WARNING",
        }
        path = f"/v1/households/{household}/live/stream"
        async with service_process(dsn, env) as service:
            await ingest(service.url, gateway, devices, 200, args.clients, 0)  # warm up
            base = await ingest(service.url, gateway, devices, args.batches, args.clients, 1)
            rss_before = service.rss_bytes()

            readers = stall(service.url, path, resident, args.stalled)
            stop = threading.Event()
            draining = threading.Thread(target=drain, args=(readers, stop))
            draining.start()
            await asyncio.sleep(1.0)  # every stream has sent its first state
            reading = await ingest(service.url, gateway, devices, args.batches, args.clients, 2)
            stop.set()
            draining.join()
            for sock in readers:
                sock.close()

            stalled = stall(service.url, path, resident, args.stalled)
            seen: dict[float, float] = {}
            timer = asyncio.create_task(read_live(service.url, path, resident, devices[0], seen))
            await asyncio.sleep(1.0)
            rate, lat, sent = await ingest(
                service.url, gateway, devices, args.batches, args.clients, 3
            )
            await asyncio.sleep(1.0)
            rss_after = service.rss_bytes()
            gone = await dropped(service)
            if timer.done():
                timer.result()  # the timing client failed: say why
            timer.cancel()
            for sock in stalled:
                sock.close()
    n = args.stalled
    print(f"{args.batches} batches of {len(devices)} readings from {args.clients} clients:")
    for label, (r, latencies, _) in (("reading", reading), ("stalled", (rate, lat, sent))):
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        b50, b99 = percentile(base[1], 0.5), percentile(base[1], 0.99)
        print(
            f"ingest_rate_with_{n}_{label}_streams: {r:.0f} batches/s "
            f"(baseline: {base[0]:.0f} batches/s with none, ratio: {r / base[0]:.2f})"
        )
        print(
            f"ingest_p50_with_{n}_{label}_streams: {p50:.1f} ms "
            f"(baseline: {b50:.1f} ms, ratio: {p50 / b50:.2f}); p99 {p99:.1f} ms "
            f"(baseline: {b99:.1f} ms, ratio: {p99 / b99:.2f})"
        )
    print(
        f"ingest_rate_stalled_vs_reading: {rate:.0f} batches/s "
        f"(baseline: {reading[0]:.0f} batches/s, ratio: {rate / reading[0]:.2f})"
    )
    delays = [(seen[w] - sent[w]) * 1000 for w in sent if w in seen]
    if delays:
        d50, d99 = percentile(delays, 0.5), percentile(delays, 0.99)
        print(
            f"live_fanout_delay: p50 {d50:.1f} ms, p99 {d99:.1f} ms ({len(delays)} of "
            f"{len(sent)} batches shown; the rest folded into later events)"
        )
    print(f"stalled_streams_dropped: {gone:.0f} of {n}")
    print(
        f"service_rss: {rss_after / 2**20:.1f} MiB with the stalled streams "
        f"(baseline: {rss_before / 2**20:.1f} MiB before any, ratio: {rss_after / rss_before:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--stalled", type=int, default=200)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
