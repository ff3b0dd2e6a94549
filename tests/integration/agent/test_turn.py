"""The turn's loop in process, with a ScriptedModel as its model and the real database and
in-memory quota under it: the round cap, the per-round tool-call cap, the whole-turn
deadline, invented numbers replaced or dropped, and the narrator or Failed when the model
fails before or after its first text."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from agent.events import Failed, StepEnd, Text, ToolOutput, TurnEvent, Usage, Verification
from agent.model import RoundEnd, SystemMessage, TextDelta, ToolCall, ToolMessage
from agent.prompts import LAST_ROUND
from agent.turn import MAX_TOOL_ROUNDS, Message, Turn, TurnDeps, TurnRecord
from service.deps import Deps, build_deps
from service.settings import ConfigError, Settings, load
from telemetry import access
from tests.fakes.model import SCRIPTED_PRICES, Fail, ScriptedModel, Sleep, Step, calls, says
from tests.integration.conftest import TEST_SECRET
from tests.integration.homes import seeded_home

QUESTION = "how much energy did I use today?"
TODAY = json.dumps({"window": {"name": "today", "first_date": None, "last_date": None}})


@dataclasses.dataclass
class Home:
    user: access.User
    seen: access.Visible


@pytest.fixture
async def home(pool: asyncpg.Pool) -> Home:
    async with pool.acquire() as conn:
        user = await access.create_user(conn, email="turn@example.test", role="resident")
    household = await seeded_home(pool, user.id, days=1.2, seed=11)
    async with pool.acquire() as conn:
        _, seen = await access.user_with_household(conn, user.id, household)
    assert seen is not None
    return Home(user, seen)


@pytest.fixture
async def deps(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Deps]:
    """The service's own Deps (in-memory quotas), for the turn's dependencies."""
    built = build_deps(
        settings.model_copy(update={"model": "scripted", "model_prices": SCRIPTED_PRICES}),
        pool,
        None,
    )
    yield built
    await built.live.close()


@dataclasses.dataclass
class Ran:
    events: list[TurnEvent]
    record: TurnRecord
    seconds: float

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, Text))

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


async def _turn(
    deps: Deps, home: Home, steps: Sequence[Step], **limits: Any
) -> tuple[Ran, ScriptedModel]:
    model = ScriptedModel(steps, quota=deps.quota)
    records: list[TurnRecord] = []
    turns: TurnDeps = dataclasses.replace(
        deps.turns,
        model=model,
        limits=dataclasses.replace(deps.turns.limits, **limits),
        observe=records.append,
    )
    turn = Turn(
        turns,
        user=home.user,
        seen=home.seen,
        messages=[Message("user", QUESTION)],
        turn_id=uuid.uuid4().hex[:12],
    )
    started = time.perf_counter()
    assert (await turn.prepare()).mode == "model"
    async with aclosing(turn.events()) as stream:
        events = [event async for event in stream]
    [record] = records
    return Ran(events, record, time.perf_counter() - started), model


def _energy(call_id: str = "c1") -> ToolCall:
    return ToolCall(call_id, "energy_summary", TODAY)


async def _nothing_held(deps: Deps, home: Home) -> bool:
    snap = await deps.quota.store.snapshot(user=home.user.id)
    return snap.user_day.held == 0 and snap.user_day.used > 0


async def test_a_model_that_always_calls_a_tool_gets_no_tools_in_its_last_round(
    deps: Deps, home: Home
) -> None:
    rounds = MAX_TOOL_ROUNDS + 1
    ran, model = await _turn(deps, home, [calls(_energy(f"c{i}")) for i in range(rounds)])
    model.assert_complete()
    assert len(model.given) == rounds
    assert all(g.tools for g in model.given[:-1])
    assert model.given[-1].tools is None
    assert model.given[-1].messages[-1] == SystemMessage(LAST_ROUND)
    # The tool calls of the last round (offered no tools) are not run. (The narrator's own
    # call ids are random hex: one may start with "c" too.)
    run = [o.call_id for o in ran.of(ToolOutput) if o.call_id.removeprefix("c").isdigit()]
    assert run == [f"c{i}" for i in range(MAX_TOOL_ROUNDS)]
    # The model said nothing: the narrator answers, with the server's figure.
    assert "kWh" in ran.text
    assert ran.record.outcome == "ok"
    assert await _nothing_held(deps, home)


async def test_calls_past_the_per_round_cap_are_answered_but_not_run(
    deps: Deps, home: Home
) -> None:
    wanted = [_energy(f"c{i}") for i in range(5)]
    steps = [calls(*wanted), says("I have the figures. ")]
    ran, model = await _turn(deps, home, steps, max_tool_calls=3)
    model.assert_complete()
    outputs = [o.output for o in ran.of(ToolOutput)]
    assert len(outputs) == 5
    assert all("error" not in o for o in outputs[:3])
    assert [o["error"]["code"] for o in outputs[3:]] == ["too_many_tool_calls"] * 2
    # The model is told, for every call it made, what became of it.
    answered = [m for m in model.given[1].messages if isinstance(m, ToolMessage)]
    assert [m.tool_call_id for m in answered] == [c.id for c in wanted]
    assert "at most 3 tool calls" in json.loads(answered[-1].content)["error"]["message"]
    assert ran.text == "I have the figures. "


async def test_the_deadline_before_any_text_hands_the_answer_to_the_narrator(
    deps: Deps, home: Home
) -> None:
    steps = [[Sleep(30), *says("Too late. ")]]
    ran, model = await _turn(deps, home, steps, deadline_seconds=0.5)
    model.assert_complete()
    assert ran.seconds < 5
    assert ran.text.startswith(
        "(This answer comes from the offline narrator because the language model took too long.)"
    )
    assert "Too late" not in ran.text
    [verification] = ran.of(Verification)
    assert verification.degraded == "the language model took too long"
    assert ran.of(Failed) == []
    assert (ran.record.outcome, ran.record.degraded) == ("ok", verification.degraded)


async def test_the_deadline_after_text_ends_the_turn_with_turn_deadline(
    deps: Deps, home: Home
) -> None:
    steps = [[TextDelta("Let me look. "), Sleep(30), *says("Too late. ")]]
    ran, _ = await _turn(deps, home, steps, deadline_seconds=0.5)
    assert ran.seconds < 5
    assert ran.text == "Let me look. "
    # The step ends, then the turn: Failed, and the verification and usage as ever.
    kinds = [type(e) for e in ran.events[-4:]]
    assert kinds == [StepEnd, Failed, Verification, Usage]
    [failed] = ran.of(Failed)
    assert failed.code == "turn_deadline"
    assert ran.record.outcome == "turn_deadline"
    assert await _nothing_held(deps, home)  # the cut round was settled


async def test_an_invented_number_is_replaced_by_the_narrators_sentence_or_dropped(
    deps: Deps, home: Home
) -> None:
    invented = "You used 321.5 kWh today so far."
    unbacked = "Your neighbour's sauna draws 4321 W."
    steps = [calls(_energy()), says(invented + " ", unbacked + " ")]
    ran, model = await _turn(deps, home, steps)
    model.assert_complete()
    assert "321.5" not in ran.text
    assert "4321" not in ran.text
    [verification] = ran.of(Verification)
    [replaced] = verification.replaced
    assert replaced["sentence"] == invented
    assert replaced["by"] in ran.text
    assert verification.dropped == (unbacked,)


@pytest.mark.parametrize(
    "said",
    [
        [QUESTION[0].upper() + QUESTION[1:]],  # the question back, as a small real model did
        ["My total consumption for the whole month "],  # trails off, no figure
        ["Sure. ", "So how much energy did I use today?"],
    ],
    ids=["echo", "trails-off", "sure-then-echo"],
)
async def test_an_answer_that_is_no_answer_is_dropped_and_the_narrator_answers(
    deps: Deps, home: Home, said: list[str]
) -> None:
    ran, model = await _turn(deps, home, [calls(_energy()), says(*said)])
    model.assert_complete()
    [verification] = ran.of(Verification)
    dropped = [s.strip() for s in said if s.strip() != "Sure."]
    assert list(verification.dropped) == dropped
    for sentence in dropped:
        assert sentence not in ran.text
    if len(said) == 1:  # nothing of the model's was released: the narrator's answer
        assert "kWh today so far" in ran.text
    assert ran.record.outcome == "ok"


async def test_a_model_that_fails_before_its_first_token_is_answered_by_the_narrator(
    deps: Deps, home: Home
) -> None:
    ran, model = await _turn(deps, home, [[Fail()]])
    model.assert_complete()
    assert ran.text.startswith(
        "(This answer comes from the offline narrator because the language model is unavailable.)"
    )
    assert "kWh" in ran.text
    assert ran.of(Failed) == []
    [verification] = ran.of(Verification)
    assert verification.source == "model"


async def test_a_model_that_fails_after_text_ends_the_turn_with_model_failed(
    deps: Deps, home: Home
) -> None:
    steps: list[Step] = [calls(_energy()), [TextDelta("Here is what I found. "), Fail()]]
    ran, model = await _turn(deps, home, steps)
    model.assert_complete()
    assert ran.text == "Here is what I found. "
    [failed] = ran.of(Failed)
    assert failed.code == "model_failed"
    assert ran.record.outcome == "model_failed"
    # The round that ended is counted; the failed one is the quota's to settle.
    assert (ran.record.prompt_tokens, ran.record.completion_tokens) == (100, 10)


async def test_each_round_is_counted_at_its_price(deps: Deps, home: Home) -> None:
    steps: list[Step] = [
        calls(_energy(), usage=(300, 10)),
        [TextDelta("Done. "), RoundEnd((), "stop", (400, 20))],
    ]
    ran, _ = await _turn(deps, home, steps)
    assert (ran.record.prompt_tokens, ran.record.completion_tokens) == (700, 30)
    # 1 and 2 per million prompt and completion tokens (SCRIPTED_PRICES).
    assert ran.record.cost == pytest.approx((700 * 1 + 30 * 2) / 1_000_000)
    assert ran.record.model == "scripted"


def test_the_services_turns_get_the_deadline_and_limits_of_its_settings(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, pool: asyncpg.Pool
) -> None:
    monkeypatch.setenv("WATTWISE_TURN_DEADLINE_SECONDS", "7.5")
    monkeypatch.setenv("WATTWISE_GAP_CAP_SECONDS", "600")
    loaded = load(database_url=settings.database_url, jwt_secret=TEST_SECRET)
    limits = build_deps(loaded, pool, None).turns.limits
    assert (limits.deadline_seconds, limits.gap_cap) == (7.5, timedelta(minutes=10))
    monkeypatch.setenv("WATTWISE_TURN_DEADLINE_SECONDS", "0")
    with pytest.raises(ConfigError, match="WATTWISE_TURN_DEADLINE_SECONDS=0"):
        load()
