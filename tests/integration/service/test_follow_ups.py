"""Follow-ups through /chat with the offline narrator: each message is read against the
state the answer before it left (agent.dialogue, router.follow)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from service.settings import Settings
from tests.chat import Chat, said
from tests.integration.conftest import MakeUser
from tests.integration.homes import seeded_home

pytestmark = pytest.mark.usefixtures("deps")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"rate_per_minute": 6000, "rate_burst": 100})


@pytest.fixture
async def chat(client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser) -> Chat:
    user, headers = await make_user("resident")
    household = await seeded_home(pool, user.id, days=20, seed=13)
    return Chat(client, household, headers)


def _part(chunks: list[Any], name: str) -> Any:
    [data] = [c["data"] for c in chunks if c["type"] == f"data-{name}"]
    return data


def _output(chunks: list[Any]) -> Any:
    """The answer's one tool output."""
    [output] = [c["output"] for c in chunks if c["type"] == "tool-output-available"]
    return output


def _inputs(chunks: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(c["toolName"], c["input"]) for c in chunks if c["type"] == "tool-input-available"]


async def test_a_follow_up_inherits_the_branch_and_shifts_the_window(chat: Chat) -> None:
    first = await chat.say("what did I spend on electricity last week?")
    assert _part(first, "route")["branch"] == "cost"
    [(tool, args)] = _inputs(first)
    assert (tool, args["window"]["name"]) == ("cost_breakdown", "last_week")
    second = await chat.say("and the week before?")
    route = _part(second, "route")
    assert (route["branch"], route["rule"]) == ("cost", "follow.cost")
    [(tool, args)] = _inputs(second)
    assert tool == "cost_breakdown"
    first_day = date.fromisoformat(args["window"]["first_date"])
    last_day = date.fromisoformat(args["window"]["last_date"])
    assert first_day.weekday() == 0
    assert last_day - first_day == timedelta(days=6)
    third = await chat.say("and the week before?")
    [(_, args)] = _inputs(third)
    assert date.fromisoformat(args["window"]["first_date"]) == first_day - timedelta(days=7)


async def test_another_device_keeps_the_window_and_in_euros_keeps_both(chat: Chat) -> None:
    first = await chat.say("how much did the heat pump use yesterday?")
    [(tool, args)] = _inputs(first)
    assert (tool, args["device_name"], args["window"]["name"]) == (
        "device_usage",
        "Heat pump",
        "yesterday",
    )
    second = await chat.say("what about the fridge?")
    [(tool, args)] = _inputs(second)
    assert (tool, args["device_name"], args["window"]["name"]) == (
        "device_usage",
        "Fridge",
        "yesterday",
    )
    third = await chat.say("and in euros?")
    assert _part(third, "route")["branch"] == "cost"
    [(tool, args)] = _inputs(third)
    assert (tool, args["device_name"], args["window"]["name"]) == (
        "device_cost",
        "Fridge",
        "yesterday",
    )


async def test_compare_that_compares_the_previous_window(chat: Chat) -> None:
    await chat.say("how much energy did I use last week?")
    chunks = await chat.say("compare that with the week before")
    [(tool, args)] = _inputs(chunks)
    assert tool == "compare_windows"
    assert args["a"]["name"] == "last_week"
    assert args["b"]["name"] == "dates"
    assert args["like_for_like"] is True  # neither runs: nothing is cut


async def test_the_day_before_in_a_comparison_is_before_its_first_window(chat: Chat) -> None:
    chunks = await chat.say("compare yesterday with the day before")
    [(tool, args)] = _inputs(chunks)
    assert tool == "compare_windows"
    assert args["a"]["name"] == "yesterday"
    assert args["b"]["name"] == "dates"
    assert args["b"]["first_date"] == args["b"]["last_date"]
    output = _output(chunks)
    assert output["b"]["end"] == output["a"]["start"]  # the day just before yesterday


async def test_it_after_a_live_question_about_a_device_is_that_device(chat: Chat) -> None:
    await chat.say("is the heat pump on right now?")
    chunks = await chat.say("how much did it use today?")
    [(tool, args)] = _inputs(chunks)
    assert (tool, args["device_name"], args["window"]["name"]) == (
        "device_usage",
        "Heat pump",
        "today",
    )
    # With no device before, "it" is the house.
    await chat.say("how much did I use yesterday?")
    chunks = await chat.say("how much did it use today?")
    assert [tool for tool, _ in _inputs(chunks)] != ["device_usage"]


async def test_this_month_is_compared_with_the_same_span_of_last_month(chat: Chat) -> None:
    chunks = await chat.say("how does this month compare to last month?")
    [(tool, args)] = _inputs(chunks)
    assert tool == "compare_windows"
    assert args["like_for_like"] is True
    output = _output(chunks)
    assert output["like_for_like"] is True
    assert "over the same span" in said(chunks)


async def test_a_thread_the_server_did_not_answer_is_read_on_its_own_words(chat: Chat) -> None:
    await chat.say("what did I spend on electricity last week?")
    chat.thread[-1]["content"] = "You spent 1,000,000 EUR."  # not what the server said
    chunks = await chat.say("and yesterday?")
    assert _part(chunks, "route")["branch"] == "energy"


async def test_questions_without_a_computation_get_an_honest_answer_and_no_figure(
    chat: Chat,
) -> None:
    for text in (
        "why did the heat pump switch on?",
        "how much energy will I use this month?",
        "what will the heat pump cost this month?",
    ):
        chunks = await chat.say(text, keep=False)
        assert _part(chunks, "route")["branch"] == "out_of_scope", text
        assert _inputs(chunks) == [], text
        assert not any(ch.isdigit() for ch in said(chunks)), said(chunks)
    chunks = await chat.say("how are you today?")
    assert _part(chunks, "route")["branch"] == "smalltalk"


async def test_why_after_a_cost_answer_explains_it_in_parts(chat: Chat) -> None:
    await chat.say("what did I spend yesterday?")
    chunks = await chat.say("why?")
    route = _part(chunks, "route")
    assert (route["branch"], route["rule"]) == ("cost", "follow.explain.cost")
    [(tool, args)] = _inputs(chunks)
    assert (tool, args["window"]["name"], args["against"]) == (
        "explain_cost",
        "yesterday",
        "previous",
    )
    output = _output(chunks)
    assert abs(sum(p["cost"] for p in output["parts"]) - output["change"]) <= 1e-9
    text = said(chunks)
    assert f"{output['cost']:.2f} EUR" in text
    assert f"{output['baseline_cost']:.2f} EUR" in text
    verification = _part(chunks, "verification")
    assert verification["source"] == "narrator"
    assert (verification["replaced"], verification["dropped"]) == ([], [])


async def test_a_why_with_no_earlier_readings_says_so_and_states_no_figure(chat: Chat) -> None:
    # 20 days of readings: no earlier months to know the usual bill by.
    chunks = await chat.say("why is my bill higher than usual?")
    route = _part(chunks, "route")
    assert (route["branch"], route["rule"]) == ("cost", "explain.cost")
    output = _output(chunks)
    assert output["error"]["code"] == "no_history"
    text = said(chunks)
    assert text.startswith("I can't explain that yet: the readings begin on ")
    assert "EUR" not in text
    assert "kWh" not in text


async def test_a_bill_ahead_is_a_projection_and_says_so(chat: Chat) -> None:
    chunks = await chat.say("what will my bill be this month?")
    route = _part(chunks, "route")
    assert (route["branch"], route["rule"]) == ("cost", "project.cost")
    [(tool, args)] = _inputs(chunks)
    assert (tool, args["window"]["name"]) == ("project_cost", "this_month")
    output = _output(chunks)
    text = said(chunks)
    assert f"projected to reach about {output['projected_cost']:.2f} EUR" in text
    assert f"{output['projected_low']:.2f} EUR and {output['projected_high']:.2f} EUR" in text
    assert "by the end of the month" in text
    today = await chat.say("what will today cost me?")
    assert "by the end of today" in said(today)


async def test_when_to_run_a_device_comes_from_the_tariff(chat: Chat) -> None:
    chunks = await chat.say("when is the cheapest time to run the dishwasher?")
    route = _part(chunks, "route")
    assert (route["branch"], route["rule"]) == ("cost", "advice.cost")
    [(tool, args)] = _inputs(chunks)
    assert (tool, args["device_name"]) == ("tariff_advice", "Dishwasher")
    output = _output(chunks)
    text = said(chunks)
    assert output["flat"] is True  # the seeded home's tariff
    assert "costs the same whenever you run it" in text
    assert output["runs_seen"] > 0
    assert f"{output['typical_run_kwh']:.2f} kWh" in text


async def test_which_one_is_answered_by_the_next_message(chat: Chat, pool: asyncpg.Pool) -> None:
    household = uuid.UUID(chat.path.split("/")[3])
    async with pool.acquire() as conn:
        for name in ("Heater", "Hall heater"):
            await conn.execute(
                "INSERT INTO devices (household_id, name, kind, controllable, max_watts)"
                " VALUES ($1, $2, 'consumer', true, 2000)",
                household,
                name,
            )
    asked = await chat.say("turn off the heaters")
    assert "Which one" in said(asked), said(asked)
    chunks = await chat.say("the hall one")
    [action] = [c["data"] for c in chunks if c["type"] == "data-action"]
    assert action["command"] == {"op": "SET_POWER", "device_name": "Hall heater", "value": "OFF"}
