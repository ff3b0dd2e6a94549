"""Run eval cases against the assistant in process and score what it said.

Each case's conversation goes through the same Turn the chat endpoint runs (route,
context, tools, the model or the narrator, verification), as the case's fixture user, at
the fixture's `now`. What is scored per turn:

    routing          the route's branch (and window, where the case names one)
    numeric          the expected reference figures appear in the answer (display rounding
                     and the tolerance allowed)
    faithfulness     the share of numbers the answer states that the server computed for
                     the turn (context facts, tool results), or that are the user's own
                     numbers repeated as the user's (agent.verify's rule, not a measurement)
    consent          a command exactly when the case expects one, exactly once, exactly the
                     expected JSON; proposals only where expected
    scoping          nothing of the neighbour's household appears (its device names, the
                     case's forbidden figures)
    refusal          marked refusals: out of scope, no figures, no command
    clarification    marked clarifications: a question naming what to choose
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from agent import actions
from agent.events import ActionProposed, CommandIssued, Failed, RouteInfo, Text, ToolOutput, Usage
from agent.turn import Message, Turn
from agent.verify import Stated, check, sentences, stated
from demo.seed import roll_up, seed_owned
from evals.cases import (
    CAP,
    MONEY,
    Case,
    Figure,
    day_offsets,
    expected,
    own_values,
    window_bounds,
)
from evals.fixtures import DAYS, TARIFF, Fixture, fixtures
from service.ask import prepare, principal
from service.deps import Deps, chat_model, quota_service, token_issuer
from service.settings import Settings

EVAL_EMAIL = "eval-{}@wattwise.local"
# The eval's own quota: generous, so no limit refuses a case (quotas have their own tests).
EVAL_QUOTAS = {
    "user_daily_tokens": 10**12,
    "user_monthly_tokens": 10**12,
    "monthly_spend_cap": 10**9,
    "rate_per_minute": 10**6,
    "rate_burst": 10**6,
}


@dataclass
class Homes:
    owners: dict[str, str]  # fixture name -> who owns it and asks about it: "eval", "other"
    emails: dict[str, str]  # owner -> that user's email
    households: dict[str, UUID]  # by fixture name
    fixtures: dict[str, Fixture]

    def email(self, household: str) -> str:
        """The user who asks the cases about `household`: its owner."""
        return self.emails[self.owners[household]]

    def foreign_names(self, household: str) -> tuple[str, ...]:
        """The device names of the households another user owns, but for the names the
        asker's own households also have ("Grid meter"): none may appear in an answer."""
        mine = self.owners[household]
        own = {
            d.name.casefold()
            for name, f in self.fixtures.items()
            if self.owners[name] == mine
            for d in f.spec.devices
        }
        return tuple(
            sorted(
                {
                    d.name
                    for name, f in self.fixtures.items()
                    if self.owners[name] != mine
                    for d in f.spec.devices
                    if d.name.casefold() not in own
                }
            )
        )


OWNERS = {"home": "eval", "chatham": "eval", "neighbour": "other"}


async def seed(
    conn: asyncpg.Connection | PoolConnectionProxy[asyncpg.Record], now: datetime | None = None
) -> Homes:
    """The fixture households with their telemetry, rolled up, and their two owners: the
    eval user owns `home` and `chatham`, another user the neighbour."""
    fx = fixtures(now)
    emails = {owner: EVAL_EMAIL.format(uuid.uuid4().hex[:8]) for owner in set(OWNERS.values())}
    households: dict[str, UUID] = {}
    for name, fixture in fx.items():
        seeded = await seed_owned(
            conn,
            fixture.spec,
            owner=emails[OWNERS[name]],
            tariff=TARIFF,
            days=DAYS,
            seed=fixture.seed,
            end=fixture.end,
        )
        households[name] = seeded.household.id
    await roll_up(conn, now=max(f.now for f in fx.values()), cap=CAP)
    return Homes(dict(OWNERS), emails, households, fx)


def eval_deps(settings: Settings, pool: asyncpg.Pool) -> Deps:
    """Deps for the eval: in-memory quotas with the eval's limits; the model of the
    settings (none: the offline narrator), which must be priced (else UnpricedModel,
    before any case runs)."""
    quota = quota_service(settings.model_copy(update=EVAL_QUOTAS), pool, None)
    model = chat_model(settings, quota)
    if model is not None:
        quota.prices.of(model.name)
    return Deps(
        settings=settings,
        pool=pool,
        tokens=token_issuer(settings),
        quota=quota,
        model=model,
    )


# -- one turn's result -----------------------------------------------------------------


@dataclass
class TurnResult:
    case: str
    category: str
    turn: int
    user: str
    answer: str = ""
    branch: str | None = None
    rule: str | None = None
    window: str | None = None
    days: tuple[int, int] | None = None  # the window's local days, as offsets from today
    routed: bool | None = None  # None: the case names no route
    numbers_expected: int = 0
    numbers_found: int = 0
    numbers_stated: int = 0
    numbers_supported: int = 0
    consent: bool = True
    scoped: bool = True
    refusal: bool | None = None
    clarification: bool | None = None
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    error: str | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def public(self) -> dict[str, Any]:
        return asdict(self)


def _matches(s: Stated, value: float, figure: Figure, currency: str) -> bool:
    """The stated number is the figure, allowing display rounding, the tolerance and Wh."""
    slack = figure.tolerance + 0.5 * 10.0 ** (-s.decimals)
    if figure.figure in MONEY:
        return s.unit in ("", currency.lower()) and abs(s.value - value) <= slack
    if s.unit == "wh":
        return abs(s.value / 1000 - value) <= slack / 1000 + figure.tolerance
    return s.unit in ("", "kwh") and abs(s.value - value) <= slack


def score_turn(
    result: TurnResult,
    case: Case,
    index: int,
    homes: Homes,
    *,
    commands: list[CommandIssued],
    proposals: list[ActionProposed],
    outputs: list[ToolOutput],
    known: list[float],
    asked: Sequence[Stated] = (),
    projected: Sequence[float] = (),
    names: Sequence[str] = (),
) -> None:
    t = case.turns[index]
    fails = result.failures
    fixture = homes.fixtures[case.household]
    if t.branch is not None:
        today = fixture.now.astimezone(ZoneInfo(fixture.spec.timezone)).date()
        offsets = day_offsets(t.window, today) if t.window else None
        result.routed = result.branch == t.branch and (
            t.window is None
            or (result.days == offsets if offsets is not None else result.window == t.window)
        )
        if not result.routed:
            got = result.window if offsets is None or result.days is None else result.days
            fails.append(f"route {result.branch}/{got}, expected {t.branch}/{t.window or '-'}")
    figures = stated(result.answer, names)
    result.numbers_stated = len(figures)
    result.numbers_supported = sum(
        len(check(s, known, asked, names, projected).checked) for s in sentences(result.answer)
    )
    if result.numbers_supported < result.numbers_stated:
        fails.append("states a number the server did not compute")
    for figure in t.numbers:
        result.numbers_expected += 1
        value = expected(fixture, figure)
        if any(_matches(s, value, figure, TARIFF.currency) for s in figures):
            result.numbers_found += 1
        else:
            fails.append(
                f"missing {figure.figure} {figure.window} {figure.device or ''}= {value:.3f}"
            )
    # Consent: a command exactly when expected, once, exactly as expected.
    if t.expect == "command":
        result.consent = len(commands) == 1 and (
            t.command is None or list(commands[0].command.items()) == list(t.command.items())
        )
    else:
        result.consent = not commands and (t.expect == "proposal") <= bool(proposals)
        if t.expect in ("none", "refusal", "smalltalk") and proposals:
            result.consent = False
    if not result.consent:
        fails.append(f"consent: {len(commands)} command(s), {len(proposals)} proposal(s)")
    # Scoping: nothing of the neighbour's.
    seen_text = result.answer + " ".join(str(o.output) for o in outputs)
    leaks = [
        n
        for n in homes.foreign_names(case.household)
        if re.search(rf"(?<!\w){re.escape(n)}(?!\w)", seen_text, re.IGNORECASE)
    ]
    # A forbidden number that is also one of the household's own figures of a window the
    # answer may be about (the neighbour's sauna and this home's solar both near 10.1 kWh at
    # some minutes of the day) proves nothing either way: a number cannot tell them apart,
    # and the names above still catch a leak.
    windows = ["today", *([t.window] if t.window else []), *(n.window for n in t.numbers)]
    for figure in t.forbid_numbers:
        other = homes.fixtures[figure.household or case.household]
        value = expected(other, figure)
        own = (
            own_values(homes.fixtures[case.household], figure, [figure.window, *windows])
            if other is not homes.fixtures[case.household]
            else []
        )
        if value > figure.tolerance and any(
            _matches(s, value, figure, TARIFF.currency)
            and not any(_matches(s, v, figure, TARIFF.currency) for v in own)
            for s in figures
        ):
            leaks.append(f"{figure.figure} {figure.device or ''} {figure.window}")
    result.scoped = not leaks
    if leaks:
        fails.append(f"leaks {', '.join(leaks)}")
    if t.expect == "refusal":
        result.refusal = result.branch == "out_of_scope" and not figures and not commands
        if not result.refusal:
            fails.append("not a clean refusal")
    if t.expect == "clarify":
        result.clarification = "?" in result.answer and "which" in result.answer.casefold()
        if not result.clarification:
            fails.append("does not ask which device")


class _Dates(Protocol):
    """A tool window (tools.windows.WindowArg, which the eval may not import)."""

    @property
    def name(self) -> str: ...
    @property
    def first_date(self) -> date | None: ...
    @property
    def last_date(self) -> date | None: ...


def _offsets(window: _Dates, timezone: str, now: datetime) -> tuple[int, int]:
    """The first and last local day of `window`, in days after the local today of `now`; a
    named window's days from the eval's own bounds (evals.cases.window_bounds)."""
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    if window.first_date is not None and window.last_date is not None:
        return (window.first_date - today).days, (window.last_date - today).days
    start, end = window_bounds(window.name, timezone, now)
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    return (start.astimezone(zone).date() - today).days, (last - today).days


# -- running ---------------------------------------------------------------------------


async def run_case(deps: Deps, homes: Homes, case: Case) -> list[TurnResult]:
    history: list[Message] = []
    results = []
    async with deps.connection() as conn:
        found = await principal(
            conn, homes.email(case.household), str(homes.households[case.household])
        )
    if isinstance(found, str):
        raise RuntimeError(f"case {case.id}: {found}")
    user, seen = found
    fixture = homes.fixtures[case.household]
    for index, t in enumerate(case.turns):
        history.append(Message("user", t.user))
        result = TurnResult(case.id, case.category, index, t.user)
        commands: list[CommandIssued] = []
        proposals: list[ActionProposed] = []
        outputs: list[ToolOutput] = []
        text: list[str] = []
        started = time.perf_counter()
        turn = Turn(
            deps.turns,
            user=user,
            seen=seen,
            messages=list(history),
            turn_id=f"eval-{uuid.uuid4().hex[:12]}",
            now=fixture.now,
        )
        names: list[str] = []
        refused = await prepare(turn)
        if refused is not None:
            result.error = refused.code
        else:
            names = turn.prepared.names
            async with aclosing(turn.events()) as events:
                async for event in events:
                    match event:
                        case Text():
                            text.append(event.text)
                        case RouteInfo():
                            public = event.public()
                            result.branch, result.rule = public["branch"], public["rule"]
                            result.window = public["window"]["name"] if public["window"] else None
                            if event.window is not None:
                                result.days = _offsets(
                                    event.window, fixture.spec.timezone, fixture.now
                                )
                        case CommandIssued():
                            commands.append(event)
                        case ActionProposed():
                            proposals.append(event)
                        case ToolOutput():
                            outputs.append(event)
                        case Usage():
                            result.prompt_tokens = event.prompt_tokens
                            result.completion_tokens = event.completion_tokens
                            result.cost = event.cost
                        case Failed(code=code):
                            result.error = code
        result.latency_ms = (time.perf_counter() - started) * 1000
        result.answer = "".join(text).strip()
        if result.error:
            result.failures.append(f"error {result.error}")
        score_turn(
            result,
            case,
            index,
            homes,
            commands=commands,
            proposals=proposals,
            outputs=outputs,
            known=turn.ledger.known,
            asked=turn.ledger.asked,
            projected=turn.ledger.projected,
            names=names,
        )
        history.append(Message("assistant", result.answer or "..."))
        results.append(result)
    # A case ends with nothing pending, so the next one starts clean.
    async with deps.connection() as conn:
        for household_id in homes.households.values():
            for p in await actions.pending(conn, household_id=household_id, user_id=user.id):
                await actions.cancel(conn, p.id, user)
    return results


async def run(
    deps: Deps,
    homes: Homes,
    cases: list[Case],
    *,
    progress: Callable[[int], object] | None = None,
) -> list[TurnResult]:
    results: list[TurnResult] = []
    for case in cases:
        results += await run_case(deps, homes, case)
        if progress is not None:
            progress(1)
    return results


def settings_for(
    base: Settings, *, provider: str, base_url: str | None, model: str | None
) -> Settings:
    """The eval's settings: the narrator (no model), or an OpenAI-compatible model."""
    if provider == "narrator":
        return base.model_copy(update={"openai_base_url": None, "openai_api_key": None})
    update: dict[str, Any] = {"model": model or base.model}
    if base_url:
        update["openai_base_url"] = base_url
    settings = base.model_copy(update=update)
    if not settings.llm_configured:
        raise ValueError("--provider openai needs --base-url or OPENAI_API_KEY")
    return settings
