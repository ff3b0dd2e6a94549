"""The chat widget in a real browser: Debian's Chromium, driven by Playwright, against
`wattwise demo` on loopback with its demo household; the model's paths (a corrected
sentence, Stop, 402/429/503) against the app served in-process over the same database
with a fake OpenAI-compatible model on loopback.

Screenshots land in test-artifacts/widget/ (WATTWISE_TEST_ARTIFACTS moves it).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect
from playwright.async_api import Request as PlaywrightRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from demo.seed import DEMO_TARIFF, seed_household
from demo.synthetic import demo_household
from quota.redis_store import connect as redis_connect
from service.app import create_app
from service.demo_command import DEMO_EMAIL
from service.deps import build_deps, token_issuer
from service.routes.widget import DemoPage
from service.settings import Settings
from telemetry import access
from telemetry.db import connect, create_pool
from tests.conftest import backend_dsns, redis_url
from tests.fakes.llm import FakeLLM, Reply, chunk, fake_llm, sse, usage
from tests.fakes.scripted import INVENTED, scripted_model
from tests.fakes.server import free_port, serving
from tests.integration.conftest import TEST_SECRET, _create_database, _drop_database, with_database

CHROMIUM = os.environ.get("WATTWISE_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("WATTWISE_TEST_ARTIFACTS", "test-artifacts")) / "widget"
PRICES = '{"fake-model": {"input": 1, "output": 2, "max_tokens": 300}}'
ASK = "Ask about your energy use"
SECONDS = 15_000  # Playwright timeouts, in ms: generous on a loaded 2-core machine

pytestmark = pytest.mark.db


@dataclass(frozen=True)
class Demo:
    url: str
    dsn: str
    household_id: UUID
    user_id: UUID
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def api(self, path: str) -> str:
        return f"{self.url}/v1/households/{self.household_id}{path}"


async def _lines(
    stream: asyncio.StreamReader,
    into: list[str],
    marker: str = "",
    seen: asyncio.Event | None = None,
) -> None:
    """Collect a pipe's lines (so it never fills); set `seen` at the first with `marker`."""
    while line := await stream.readline():
        into.append(line.decode())
        if seen is not None and marker in into[-1]:
            seen.set()


@pytest.fixture(scope="module")
async def host() -> AsyncIterator[tuple[str, dict[str, str]]]:
    """Another origin, as an energy company's site: a page with the one script tag."""
    page: dict[str, str] = {}

    async def site(request: Request) -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><html lang=en><head><title>Acme Energy</title></head><body>"
            "<h1>Acme Energy: your account</h1><div id=energy-chat></div>"
            f'<script src="{page["service"]}/widget.js" defer data-household="{page["household"]}"'
            ' data-token-provider="getWattwiseToken" data-target="#energy-chat"></script>'
            "</body></html>"
        )

    async with serving(Starlette(routes=[Route("/", site)])) as url:
        yield url, page


@pytest.fixture(scope="module")
async def demo(
    tmp_path_factory: pytest.TempPathFactory, host: tuple[str, dict[str, str]]
) -> AsyncIterator[Demo]:
    """`wattwise demo` in its own process, on a database of its own on plain PostgreSQL."""
    admin = backend_dsns()["postgres"]
    assert admin is not None
    name = f"wattwise_widget_{os.getpid()}"
    await _create_database(admin, name)
    dsn = with_database(admin, name)
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WATTWISE_", "OPENAI_")) and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    env |= {
        "DATABASE_URL": dsn,
        "WATTWISE_PORT": str(port),
        "WATTWISE_JWT_SECRET": TEST_SECRET,
        "WATTWISE_DATA_DIR": str(tmp_path_factory.mktemp("demo")),
        "WATTWISE_CORS_ORIGINS": host[0],
        # No simulated readings: a test compares the header with /live, which a reading
        # arriving between the two would change.
        "WATTWISE_DEMO_READING_SECONDS": "0",
        # The module's tests are one person asking faster than anyone types; run one after
        # another, they ran out of the default burst of 5 (the 429 path is tested in-process).
        "WATTWISE_RATE_BURST": "100",
        "WATTWISE_RATE_PER_MINUTE": "600",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", "demo", "--days", "2",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    out: list[str] = []
    err: list[str] = []
    serving_now = asyncio.Event()
    readers = [
        # The banner's last line: the demo prints it once it serves.
        asyncio.create_task(_lines(proc.stdout, out, "/chat ", serving_now)),
        asyncio.create_task(_lines(proc.stderr, err)),
    ]
    try:
        async with asyncio.timeout(180):  # seeding two days of telemetry comes first
            await serving_now.wait()
        banner = "".join(out)
        household = re.search(r"household: (\S+)", banner)
        token = re.search(r"token:\n(\S+)", banner)
        assert household, banner
        assert token, banner
        conn = await asyncpg.connect(dsn)
        try:
            user = await access.get_user_by_email(conn, DEMO_EMAIL)
        finally:
            await conn.close()
        assert user is not None
        yield Demo(f"http://127.0.0.1:{port}", dsn, UUID(household[1]), user.id, token[1])
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            await asyncio.wait_for(proc.wait(), 30)
        await asyncio.gather(*readers)
        await _drop_database(admin, name)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - once, before anything runs
        if os.environ.get("WATTWISE_REQUIRE_ALL_BACKENDS") == "1":
            pytest.fail(f"no Chromium at {CHROMIUM} (scripts/test installs Debian's chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    async with async_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox cannot start as root, which the test command is.
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()


Opened = Callable[..., AbstractAsyncContextManager[Page]]


@pytest.fixture
def open_page(browser: Browser) -> Opened:
    """A fresh browser context and page; fails the test on any script error in it."""

    @asynccontextmanager
    async def opened(
        width: int = 1100, height: int = 800, locale: str = "en-GB"
    ) -> AsyncIterator[Page]:
        context = await browser.new_context(
            viewport={"width": width, "height": height},
            locale=locale,
            timezone_id="Europe/Berlin",
        )
        context.set_default_timeout(SECONDS)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        def console(message: ConsoleMessage) -> None:
            # A refusal a test asked for is logged as a failed resource; nothing else may be.
            if message.type == "error" and "Failed to load resource" not in message.text:
                errors.append(message.text)

        page.on("console", console)
        try:
            yield page
        finally:
            await context.close()
        assert errors == []

    return opened


async def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


async def _ask(page: Page, question: str) -> Any:
    """Type and send a question; the locator of the answer it starts."""
    answers = page.locator(".ww-assistant")
    # The widget takes no new question while an answer streams (Send is hidden then).
    await expect(page.get_by_role("button", name="Send")).to_be_visible()
    before = await answers.count()
    box = page.get_by_label(ASK)
    await box.fill(question)
    await box.press("Enter")
    return answers.nth(before)


async def _gateway(demo: Demo) -> dict[str, str]:
    conn = await asyncpg.connect(demo.dsn)
    try:
        user = await access.create_user(
            conn, email=f"gateway-{uuid.uuid4().hex[:8]}@example.test", role="gateway"
        )
        await access.add_member(
            conn, household_id=demo.household_id, user_id=user.id, role="gateway"
        )
    finally:
        await conn.close()
    issuer = token_issuer(Settings(env="development", jwt_secret=TEST_SECRET))
    return {"Authorization": f"Bearer {issuer.issue(user.id, ttl=timedelta(minutes=5))}"}


async def test_the_demo_page_answers_with_the_energy_endpoints_figure_and_switches_on_consent(
    open_page: Opened, demo: Demo
) -> None:
    async with open_page() as page, httpx.AsyncClient() as api:
        confirms: list[dict[str, str]] = []
        fetched: list[str] = []

        def sent(request: PlaywrightRequest) -> None:
            fetched.append(request.url)
            if request.url.endswith("/confirm"):
                confirms.append(request.headers)

        page.on("request", sent)
        await page.goto(f"{demo.url}/")

        # The header shows the power now, and follows a reading the gateway sends.
        gateway = await _gateway(demo)
        live_line = page.locator(".ww-live")
        await expect(live_line).to_have_text(
            re.compile(r"^Now \S+ k?W in use · solar \S+ k?W · \S+ k?W (from|to) the grid$")
        )
        devices = (await api.get(demo.api("/live"), headers=demo.headers)).json()["devices"]
        fridge = next(d for d in devices if d["name"] == "Fridge")
        reading = {"device_id": fridge["id"], "ts": datetime.now(UTC).isoformat(), "watts": 287.5}
        stored = await api.post(
            f"{demo.url}/v1/telemetry", headers=gateway, json={"readings": [reading]}
        )
        assert stored.json()["accepted"] == 1, stored.text
        now = (await api.get(demo.api("/live"), headers=demo.headers)).json()["house_load_watts"]
        # As JavaScript's String(number) writes it: both write the shortest exact digits.
        shown = str(int(now)) if float(now).is_integer() else repr(now)
        await expect(live_line).to_have_attribute("data-house-load-watts", shown)
        await _shot(page, "0-live")

        # Today's figure grows while the demo's readings hold: the answer's lies between
        # what /energy says before the question and after the answer.
        energy = (await api.get(demo.api("/energy?window=day"), headers=demo.headers)).json()
        answer = await _ask(page, "how much energy did I use today?")
        await expect(answer).to_have_attribute("aria-busy", "false")
        await expect(answer.locator(".ww-body")).to_contain_text(
            re.compile(r"You used \d+\.\d\d kWh today")
        )
        after = (await api.get(demo.api("/energy?window=day"), headers=demo.headers)).json()
        body = await answer.locator(".ww-body").inner_text()
        said = re.search(r"You used (\d+\.\d\d) kWh today", body)
        assert said is not None, body
        low, high = round(energy["consumption_kwh"], 2), round(after["consumption_kwh"], 2)
        assert low <= float(said.group(1)) <= high, (low, said.group(1), high)
        await expect(answer.locator(".ww-meta")).to_contain_text(re.compile(r"^Today, .* as of "))
        await expect(answer.locator(".ww-verified")).to_contain_text("match your meter data")

        # The charts draw what the endpoints say for the answer's window: the same
        # requests, repeated here, give the points (average kW per hour up to the newest
        # reading) and the bars.
        line = answer.locator(".ww-spark-line")
        await expect(line).to_be_visible()
        [series_url] = [u for u in fetched if "/energy/series?" in u]
        [top_url] = [u for u in fetched if "/top-devices?" in u]
        series = (await api.get(series_url, headers=demo.headers)).json()
        top = (await api.get(top_url, headers=demo.headers)).json()
        fresh = datetime.fromisoformat(series["fresh_as_of"])
        kw = []
        for b in series["buckets"]:
            start = datetime.fromisoformat(b["start"])
            hours = (min(datetime.fromisoformat(b["end"]), fresh) - start).total_seconds() / 3600
            if hours > 0:
                kw.append(b["consumption_kwh"] / hours)
        points = (await line.get_attribute("points") or "").split()
        assert len(points) == len(kw) >= 2
        await expect(answer.locator(".ww-chart-title").first).to_contain_text(
            f"peak {max(kw):.2f} kW at "
        )
        names = [d["name"] for d in top["devices"] if d["kwh"] > 0]
        await expect(answer.locator(".ww-bar-name")).to_have_text(names)
        await expect(answer.locator(".ww-bar-value").first).to_have_text(
            f"{top['devices'][0]['kwh']:.2f} kWh"
        )
        await _shot(page, "1-answer")

        proposal = await _ask(page, "turn off the dishwasher")
        card = proposal.locator(".ww-card")
        await expect(card.locator(".ww-card-title")).to_have_text("Switch Dishwasher off")
        await expect(card.locator(".ww-card-state")).to_contain_text("Expires at")
        await expect(card).to_have_attribute("data-status", "proposed")
        await _shot(page, "2-proposal")

        # By keyboard: from the question box, back past Cancel to Confirm, and Enter.
        await expect(page.get_by_label(ASK)).to_be_focused()
        await page.keyboard.press("Shift+Tab")
        await page.keyboard.press("Shift+Tab")
        await expect(card.get_by_role("button", name="Confirm")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(card).to_have_attribute("data-status", "sent")
        await expect(card.locator(".ww-card-state")).to_contain_text("Sent to your home")
        assert len(confirms) == 1
        assert re.fullmatch(r"confirm-[0-9a-f]{32}", confirms[0]["idempotency-key"])
        await _shot(page, "3-sent")

        # The household's gateway takes the command from its outbox and acknowledges it.
        outbox = await api.get(demo.api("/commands"), headers=gateway)
        [command] = outbox.json()["commands"]
        assert command["command"] == {
            "op": "SET_POWER",
            "device_name": "Dishwasher",
            "value": "OFF",
        }
        ack = await api.post(
            f"{demo.url}/v1/commands/{command['id']}/ack", headers=gateway, json={"success": True}
        )
        assert ack.status_code == 200, ack.text
        await expect(card).to_have_attribute("data-status", "acknowledged")
        await expect(card.locator(".ww-card-state")).to_have_text(
            "Done: the device acknowledged the command."
        )
        await _shot(page, "4-acknowledged")


async def test_cancel_on_the_card_sends_nothing(open_page: Opened, demo: Demo) -> None:
    async with open_page() as page, httpx.AsyncClient() as api:
        await page.goto(f"{demo.url}/")
        card = (await _ask(page, "switch the heat pump off")).locator(".ww-card")
        await card.get_by_role("button", name="Cancel").click()
        await expect(card).to_have_attribute("data-status", "cancelled")
        await expect(card.get_by_role("button", name="Confirm")).to_be_hidden()
        action_id = await card.get_attribute("data-action-id")
        read = await api.get(f"{demo.url}/v1/actions/{action_id}", headers=demo.headers)
        assert read.json()["action"]["status"] == "cancelled"


async def test_a_typed_yes_sends_and_the_card_reports_the_gateways_failure(
    open_page: Opened, demo: Demo
) -> None:
    async with open_page() as page, httpx.AsyncClient() as api:
        await page.goto(f"{demo.url}/")
        card = (await _ask(page, "turn on the dishwasher")).locator(".ww-card")
        await expect(card).to_have_attribute("data-status", "proposed")
        await _ask(page, "yes")
        await expect(card).to_have_attribute("data-status", "sent")
        gateway = await _gateway(demo)
        [command] = (await api.get(demo.api("/commands"), headers=gateway)).json()["commands"]
        ack = await api.post(
            f"{demo.url}/v1/commands/{command['id']}/ack",
            headers=gateway,
            json={"success": False, "detail": "relay stuck"},
        )
        assert ack.status_code == 200, ack.text
        await expect(card).to_have_attribute("data-status", "failed")
        await expect(card.locator(".ww-card-state")).to_have_text(
            "The device could not carry it out: relay stuck"
        )


async def test_at_phone_width_nothing_overflows(open_page: Opened, demo: Demo) -> None:
    async with open_page(width=390, height=844) as page:
        await page.goto(f"{demo.url}/")
        answer = await _ask(page, "which device used the most this week?")
        await expect(answer).to_have_attribute("aria-busy", "false")
        await expect(answer.locator(".ww-bars")).to_be_visible()
        widths = await page.evaluate(
            "() => [document.documentElement.scrollWidth, innerWidth,"
            " document.querySelector('.ww').getBoundingClientRect().width]"
        )
        assert widths[0] <= widths[1], widths
        assert widths[2] == widths[1]  # the widget takes the whole width
        send = await page.get_by_role("button", name="Send").bounding_box()
        assert send is not None
        assert send["x"] + send["width"] <= 390
        assert send["height"] >= 44  # a touch target
        await _shot(page, "5-phone")


async def test_another_site_embeds_it_with_one_script_tag(
    open_page: Opened, demo: Demo, host: tuple[str, dict[str, str]]
) -> None:
    site, page_config = host
    page_config |= {"service": demo.url, "household": str(demo.household_id)}
    async with open_page() as page:
        token = json.dumps(demo.token)
        await page.add_init_script(f"window.getWattwiseToken = async () => {token}")
        await page.goto(f"{site}/")
        # widget.js brought its stylesheet along.
        await expect(page.locator(".ww")).to_have_css("border-radius", "12px")
        answer = await _ask(page, "what did I spend yesterday?")
        await expect(answer).to_have_attribute("aria-busy", "false")
        await expect(answer.locator(".ww-meta")).to_contain_text("Yesterday")
        await expect(answer.locator(".ww-body")).to_contain_text("EUR")
        await _shot(page, "6-embedded")


# -- the model's paths, in-process -----------------------------------------------------


@pytest.fixture(scope="module")
async def demo_pool(demo: Demo) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(demo.dsn, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def live_redis() -> AsyncIterator[aioredis.Redis]:
    client = redis_connect(redis_url())
    yield client
    await client.aclose()


Served = Callable[..., AbstractAsyncContextManager[str]]


@pytest.fixture
def served(demo: Demo, demo_pool: asyncpg.Pool, live_redis: aioredis.Redis) -> Served:
    """The app with a model at `base_url`, serving the demo page for the demo resident (or
    for `home`, a household and its resident)."""

    @asynccontextmanager
    async def serve(
        base_url: str,
        *,
        redis: aioredis.Redis | None = None,
        home: tuple[UUID, UUID] | None = None,
        **settings: Any,
    ) -> AsyncIterator[str]:
        household_id, user_id = home or (demo.household_id, demo.user_id)
        configured = Settings(
            env="development",
            database_url=demo.dsn,
            jwt_secret=TEST_SECRET,
            openai_base_url=base_url,
            model="fake-model",
            model_prices=PRICES,
            llm_first_token_seconds=5,
            quota_prefix=f"wwtest:{uuid.uuid4().hex[:10]}",
        ).model_copy(update=settings)  # unvalidated: a proposal may live 3 s here
        deps = build_deps(configured, demo_pool, redis or live_redis)
        token = deps.tokens.issue(user_id, ttl=timedelta(minutes=10))
        app = create_app(deps=deps, demo=DemoPage(household_id, token))
        try:
            async with serving(app) as url:
                yield url
        finally:
            assert deps.model is not None
            await deps.model.client.close()
            await deps.live.close()

    return serve


@pytest.fixture
async def scripted() -> AsyncIterator[str]:
    async with scripted_model() as url:
        yield url


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with fake_llm() as server:
        yield server


async def test_a_card_left_alone_expires_and_cannot_be_confirmed(
    open_page: Opened, served: Served, scripted: str
) -> None:
    async with served(scripted, action_ttl_seconds=3) as url, open_page() as page:
        await page.goto(f"{url}/")
        card = (await _ask(page, "switch the EV charger off")).locator(".ww-card")
        await expect(card.locator(".ww-card-state")).to_contain_text("(in 0:0")
        await expect(card).to_have_attribute("data-status", "expired")
        await expect(card.locator(".ww-card-state")).to_have_text(
            "This proposal expired before it was confirmed. Nothing was sent."
        )
        await expect(card.get_by_role("button", name="Confirm")).to_be_hidden()


async def test_a_sentence_the_server_could_not_check_is_called_out(
    open_page: Opened, served: Served, scripted: str
) -> None:
    async with served(scripted) as url, open_page() as page:
        await page.goto(f"{url}/")
        answer = await _ask(page, "how much energy did I use today?")
        await expect(answer).to_have_attribute("aria-busy", "false")
        await expect(answer.locator(".ww-body")).to_contain_text("kWh")
        await expect(answer.locator(".ww-body")).not_to_contain_text(INVENTED)
        corrected = answer.locator(".ww-corrected")
        await expect(corrected).to_contain_text("Checked and corrected")
        await expect(corrected).to_contain_text(re.compile("could not be checked|replaced"))
        await _shot(page, "7-corrected")


async def test_stop_aborts_the_answer_and_the_model_stream(
    open_page: Opened, served: Served, fake: FakeLLM
) -> None:
    sentences = [chunk({"content": f"Here is thought {w}. "}) for w in ("one", "two", "three")]
    fake.replies.append(
        Reply(sse(*sentences, *[chunk({"content": "More. "})] * 60, usage(100, 80)), delay=0.15)
    )
    async with served(fake.base_url) as url, open_page() as page:
        await page.goto(f"{url}/")
        answer = await _ask(page, "how much energy did I use today?")
        # The text streams: a sentence is on screen while the answer is still busy.
        await expect(answer.locator(".ww-body")).to_contain_text("Here is thought one.")
        await expect(answer).to_have_attribute("aria-busy", "true")
        await page.get_by_role("button", name="Stop the answer").click()
        await expect(answer).to_have_attribute("aria-busy", "false")
        await expect(answer.locator(".ww-note")).to_have_text("Stopped.")
        await expect(page.get_by_role("button", name="Send")).to_be_visible()
        async with asyncio.timeout(5):
            while fake.hung_up == 0:  # noqa: ASYNC110 - the server closed the model's stream
                await asyncio.sleep(0.05)
        await _shot(page, "8-stopped")


async def test_too_many_questions_say_when_to_retry(
    open_page: Opened, served: Served, scripted: str
) -> None:
    # One turn in the burst (however many model rounds it has): the second is refused.
    async with served(scripted, rate_burst=1, rate_per_minute=1) as url, open_page() as page:
        await page.goto(f"{url}/")
        first = await _ask(page, "how much energy did I use today?")
        await expect(first).to_have_attribute("aria-busy", "false")
        await _ask(page, "and what did it cost?")
        notice = page.get_by_role("alert")
        await expect(notice).to_contain_text(
            re.compile(r"faster than the assistant can answer\. Try again in \d+ s\.")
        )
        await expect(page.get_by_role("button", name="Send")).to_be_disabled()
        await _shot(page, "9-rate-limited")


async def test_an_exhausted_daily_quota_says_when_it_resets(
    open_page: Opened, served: Served, scripted: str
) -> None:
    async with served(scripted, user_daily_tokens=10) as url, open_page() as page:
        await page.goto(f"{url}/")
        await _ask(page, "how much energy did I use today?")
        await expect(page.get_by_role("alert")).to_contain_text(
            re.compile(r"You have used today's assistant allowance\. It resets on .+\.")
        )
        await expect(page.locator(".ww-assistant")).to_have_count(0)
        await _shot(page, "10-quota")


async def test_an_unavailable_quota_store_asks_to_try_again(
    open_page: Opened, served: Served, scripted: str
) -> None:
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    try:
        async with served(scripted, redis=dead) as url, open_page() as page:
            await page.goto(f"{url}/")
            await _ask(page, "how much energy did I use today?")
            await expect(page.get_by_role("alert")).to_contain_text(
                "The assistant is unavailable for a moment (quota_unavailable)"
            )
            # Smalltalk needs no quota and still answers.
            hello = await _ask(page, "hello")
            await expect(hello).to_have_attribute("aria-busy", "false")
            await expect(hello.locator(".ww-body")).not_to_be_empty()
    finally:
        await dead.aclose()


async def test_times_beside_answers_are_24_hour_like_the_answers(
    open_page: Opened, demo: Demo
) -> None:
    """In a 12-hour locale the widget wrote "02:05 PM" beside an answer saying "14:05"."""
    async with open_page(locale="en-US") as page:
        await page.goto(f"{demo.url}/")
        answer = await _ask(page, "how much energy did I use today?")
        await expect(answer).to_have_attribute("aria-busy", "false")
        said = re.search(r"as of (\d\d:\d\d) on", await answer.locator(".ww-body").inner_text())
        assert said, await answer.inner_text()
        meta = answer.locator(".ww-meta")
        await expect(meta).to_contain_text(re.compile(rf"data as of .*\b{said[1]}\b"))
        assert not re.search(r"\b[AP]M\b", await meta.inner_text())
        await _shot(page, "11-24-hour")


async def _quiet_home(dsn: str, stopped: datetime) -> tuple[UUID, UUID]:
    """A household like the demo's whose readings stopped at `stopped`, and its resident."""
    conn = await connect(dsn)
    try:
        seeded = await seed_household(
            conn, demo_household(), tariff=DEMO_TARIFF, days=0.25, seed=3, end=stopped
        )
        user = await access.create_user(
            conn, email=f"quiet-{uuid.uuid4().hex[:8]}@example.test", role="resident"
        )
        await access.add_member(
            conn, household_id=seeded.household.id, user_id=user.id, role="owner"
        )
    finally:
        await conn.close()
    return seeded.household.id, user.id


async def test_live_figures_with_no_recent_reading_say_when_they_are_from(
    open_page: Opened, served: Served, scripted: str, demo: Demo
) -> None:
    """Readings that had stopped showed as "Now 0 W in use", as if it were now."""
    home = await _quiet_home(demo.dsn, datetime.now(UTC) - timedelta(minutes=20))
    berlin = ZoneInfo("Europe/Berlin")
    async with served(scripted, home=home) as url, open_page(locale="en-US") as page:
        await page.clock.install()
        await page.goto(f"{url}/")
        token = json.loads(await page.locator("#wattwise-demo").inner_text())["token"]
        headers = {"Authorization": f"Bearer {token}"}
        live_line = page.locator(".ww-live")
        async with httpx.AsyncClient() as api:
            live = (await api.get(f"{url}/v1/households/{home[0]}/live", headers=headers)).json()
            last = datetime.fromisoformat(live["fresh_as_of"]).astimezone(berlin)
            await expect(live_line).to_have_text(
                re.compile(rf"^As of (.+, )?{last:%H:%M}, no newer readings$")
            )
            await expect(live_line).to_have_attribute("data-stale", "true")
            await _shot(page, "12-stale")

            # A reading now: the figures are now's, until two minutes pass without another.
            grid = next(d for d in live["devices"] if d["kind"] == "grid")
            sent = datetime.now(UTC)
            reading = {"device_id": grid["id"], "ts": sent.isoformat(), "watts": 1200.0}
            stored = await api.post(
                f"{url}/v1/telemetry", headers=headers, json={"readings": [reading]}
            )
            assert stored.json()["accepted"] == 1, stored.text
        await expect(live_line).to_have_text(re.compile(r"^Now \S+ k?W in use · "))
        await expect(live_line).to_have_attribute("data-stale", "false")
        await page.clock.fast_forward("02:01")
        await expect(live_line).to_have_text(
            f"As of {sent.astimezone(berlin):%H:%M}, no newer readings"
        )


async def test_the_widget_files_are_cacheable(demo: Demo) -> None:
    async with httpx.AsyncClient() as api:
        first = await api.get(f"{demo.url}/widget.js")
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/javascript")
        etag = first.headers["etag"]
        again = await api.get(f"{demo.url}/widget.js", headers={"If-None-Match": etag})
        assert again.status_code == 304
        css = await api.get(f"{demo.url}/widget.css")
        assert css.headers["content-type"].startswith("text/css")
        page = await api.get(f"{demo.url}/")
        assert "script-src 'self' 'nonce-" in page.headers["content-security-policy"]


async def test_only_the_demo_serves_a_page_at_the_root(client: httpx.AsyncClient) -> None:
    """The demo page carries a token; a service that is not the demo has no page there."""
    root = await client.get("/")
    assert root.status_code == 404
    assert root.json()["error"]["code"] == "not_found"
    assert (await client.get("/widget.js")).status_code == 200
    assert (await client.post("/widget.js")).status_code == 405
