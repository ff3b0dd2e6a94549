"""The process's Prometheus metrics (prometheus-client), in a registry of its own, and
their text exposition (served by service.routes.health).

Labels are bounded sets: routes are path templates ("/v1/households/{household_id}/energy"),
never paths, so a scanner's made-up URLs cannot grow the series. Gauges that describe
shared state (rollup lag, the pool) are sampled when scraped. Each process exposes its
own figures; Prometheus sums over the instances it scrapes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    platform_collector,
    process_collector,
)

from telemetry import rollups

if TYPE_CHECKING:
    import asyncpg

    from telemetry.ingest import IngestResult

log = logging.getLogger("wattwise.metrics")

SAMPLE_TIMEOUT_SECONDS = 2.0
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_TURN = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)


class Metrics:
    def __init__(self, *, currency: str = "USD") -> None:
        self.currency = currency
        r = self.registry = CollectorRegistry()
        process_collector.ProcessCollector(registry=r)
        platform_collector.PlatformCollector(registry=r)
        gc_collector.GCCollector(registry=r)
        self.requests = Counter(
            "wattwise_http_requests",
            "HTTP requests, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "wattwise_http_request_duration_seconds",
            "Time from a request's arrival to its response's start (a stream's headers).",
            ["method", "route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.turns = Counter(
            "wattwise_turns",
            "Chat turns, by branch, who answered (fixed, narrator, model) and outcome.",
            ["branch", "mode", "outcome"],
            registry=r,
        )
        self.turn_seconds = Histogram(
            "wattwise_turn_duration_seconds",
            "A turn from its start to its last event.",
            ["branch", "mode"],
            buckets=_TURN,
            registry=r,
        )
        self.first_text_seconds = Histogram(
            "wattwise_turn_first_text_seconds",
            "A turn from its start to the first text the person sees.",
            ["branch", "mode"],
            buckets=_TURN,
            registry=r,
        )
        self.tokens = Counter(
            "wattwise_llm_tokens",
            "Tokens settled against quotas, by model and type (prompt, completion).",
            ["model", "type"],
            registry=r,
        )
        self.cost = Counter(
            "wattwise_llm_cost",
            "Spend settled against the cap, in the currency's major unit, by model.",
            ["model", "currency"],
            registry=r,
        )
        self.quota_refusals = Counter(
            "wattwise_quota_refusals",
            "Model calls refused before they started, by reason.",
            ["reason"],
            registry=r,
        )
        self.ingest_readings = Counter(
            "wattwise_ingest_readings",
            "Telemetry readings by outcome (accepted, duplicate, rejected) and rejection code.",
            ["outcome", "code"],
            registry=r,
        )
        self.rollup_lag = Gauge(
            "wattwise_rollup_lag_seconds",
            "Age of the end of the newest rolled-up bucket (NaN before the first refresh).",
            registry=r,
        )
        self.rollup_refresh_age = Gauge(
            "wattwise_rollup_refresh_age_seconds",
            "Time since the rollups were last refreshed, by any process.",
            registry=r,
        )
        self.rollup_dirty = Gauge(
            "wattwise_rollup_dirty_ranges",
            "Ranges of readings waiting for a refresh (counted up to 100,000).",
            registry=r,
        )
        self.db_pool = Gauge(
            "wattwise_db_pool_connections",
            "Connections of this process's database pool, by state (in_use, idle, max).",
            ["state"],
            registry=r,
        )
        self.db_wait_seconds = Histogram(
            "wattwise_db_pool_wait_seconds",
            "Time a request waited for a pooled connection.",
            buckets=_LATENCY,
            registry=r,
        )
        self.streams = Gauge(
            "wattwise_sse_streams_open",
            "Server-Sent Event streams open now, by endpoint (chat, completions, live).",
            ["endpoint"],
            registry=r,
        )
        self.live_subscribers = Gauge(
            "wattwise_live_subscribers",
            "Live-stream clients of this process.",
            registry=r,
        )
        self.live_dropped = Counter(
            "wattwise_live_dropped",
            "Live-stream clients dropped, by reason (slow: an event waited longer than "
            "WATTWISE_LIVE_SEND_TIMEOUT to be sent).",
            ["reason"],
            registry=r,
        )
        self.live_published = Counter(
            "wattwise_live_published",
            "Live updates published by this process, by outcome (sent, dropped, failed).",
            ["outcome"],
            registry=r,
        )

    # quota.service.QuotaObserver
    def settled(
        self, *, model: str, prompt_tokens: int, completion_tokens: int, cost_micro: int
    ) -> None:
        self.tokens.labels(model, "prompt").inc(prompt_tokens)
        self.tokens.labels(model, "completion").inc(completion_tokens)
        self.cost.labels(model, self.currency).inc(cost_micro / 1_000_000)

    def refused(self, reason: str) -> None:
        self.quota_refusals.labels(reason).inc()

    def ingested(self, result: IngestResult) -> None:
        self.ingest_readings.labels("accepted", "").inc(result.accepted)
        self.ingest_readings.labels("duplicate", "").inc(result.duplicates)
        for rejection in result.rejected:
            self.ingest_readings.labels("rejected", rejection.code).inc()

    async def sample(
        self,
        pool: asyncpg.Pool,
        connection: Callable[[], AbstractAsyncContextManager[Any]],
    ) -> None:
        """Read the gauges of shared state: the pool's from memory, the rollups' over a
        `connection()`; a database that does not answer in time leaves the rollup gauges as
        they were."""
        size, idle = pool.get_size(), pool.get_idle_size()
        self.db_pool.labels("in_use").set(size - idle)
        self.db_pool.labels("idle").set(idle)
        self.db_pool.labels("max").set(pool.get_max_size())
        try:
            async with asyncio.timeout(SAMPLE_TIMEOUT_SECONDS), connection() as conn:
                status = await rollups.status(conn)
                dirty = await rollups.dirty_ranges(conn)
        except Exception as exc:  # a scrape reports what it can; it never fails for this
            log.warning("metrics: the rollup status could not be read: %s", exc)
            return
        self.rollup_lag.set(status.lag if status.lag is not None else float("nan"))
        self.rollup_refresh_age.set(
            status.refresh_age if status.refresh_age is not None else float("nan")
        )
        self.rollup_dirty.set(dirty)
