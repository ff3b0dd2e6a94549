"""The multi-turn conversation dataset, written by this script so that its hundreds of
expectations follow one set of rules (evals/datasets/README.md, "numbers"):

    python -m evals.conversations            # rewrites evals/datasets/conversations.jsonl
    python -m evals.conversations --check    # exits 1 if the file is not what it writes

Each conversation is a flow (a follow-up chain, a comparison, a proposal and its consent, a
clarification, smalltalk or a refusal between questions) played in each fixture home it
fits, with that home's devices. Windows are the eval's own specs (`days:A:B`, `week:K`,
`like:W~R`), never dates, so a case means the same whatever day the eval runs; figures are
listed only for windows inside the fixtures' 9 days of readings.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from evals.cases import DATASETS

PATH = DATASETS / "conversations.jsonl"
Json = dict[str, Any]


@dataclass(frozen=True)
class Home:
    key: str
    consumers: tuple[str, ...]  # consuming devices, exact names
    aliases: tuple[tuple[str, str], ...]  # (a word people use, the device it means)
    switchable: tuple[tuple[str, str], ...]  # (what people say, the device's exact name)
    solar: bool
    exports: bool
    other: str  # a fixture another user owns: none of its figures may appear


HOMES = (
    Home(
        "home",
        ("Heat pump", "Fridge", "EV charger", "Dishwasher"),
        (("the car", "EV charger"), ("solar", "Solar inverter")),
        (("heat pump", "Heat pump"), ("dishwasher", "Dishwasher"), ("EV charger", "EV charger")),
        solar=True,
        exports=False,  # its battery takes the surplus
        other="neighbour",
    ),
    Home(
        "chatham",
        ("Heater", "Hall heater", "Fridge"),
        (("solar", "Solar roof"), ("the hall heater", "Hall heater")),
        (("hall heater", "Hall heater"),),
        solar=True,
        exports=True,
        other="neighbour",
    ),
    Home(
        "neighbour",
        ("Sauna", "Hot tub"),
        (("the tub", "Hot tub"),),
        (("sauna", "Sauna"), ("hot tub", "Hot tub")),
        solar=False,
        exports=False,
        other="home",
    ),
)

# Whole local days inside the readings: their figures are listed. Partial windows run to now.
WHOLE = {"yesterday", "last_3_days", "last_7_days"} | {f"days:{d}:{d}" for d in range(-8, 0)}
PARTIAL = {"today", "this_week", "this_month"}


def _n(figure: str, window: str, device: str | None = None) -> Json:
    out: Json = {"figure": figure, "window": window, "tolerance": 0.01}
    if device is not None:
        out["device"] = device
    return out


def _turn(
    user: str,
    branch: str | None,
    expect: str,
    *,
    window: str | None = None,
    numbers: list[Json] | None = None,
    command: Json | None = None,
    forbid: list[Json] | None = None,
) -> Json:
    route: Json = {"branch": branch} if branch is not None else {}
    if window is not None:
        route["window"] = window
    return {
        "user": user,
        "route": route,
        "expect": expect,
        "numbers": numbers or [],
        "forbid_numbers": forbid or [],
        "command": command,
    }


def energy_numbers(home: Home, window: str) -> list[Json]:
    """What the narrator states of the house for `window`: consumption; for whole days
    also import, solar and (where the home exports) export."""
    if window in PARTIAL:
        return [_n("consumption", window)]
    if window not in WHOLE:
        return []
    out = [_n("consumption", window), _n("import", window)]
    if home.solar:
        out.append(_n("solar", window))
    if home.exports:
        out.append(_n("export", window))
    return out


def cost_numbers(window: str) -> list[Json]:
    if window in PARTIAL:
        return [_n("cost", window)]
    return [_n("cost", window), _n("import", window)] if window in WHOLE else []


def device_numbers(device: str, window: str) -> list[Json]:
    return [_n("device", window, device)] if window in WHOLE | PARTIAL else []


def device_cost_numbers(device: str, window: str) -> list[Json]:
    if window not in WHOLE | PARTIAL:
        return []
    return [_n("device_cost", window, device), _n("device", window, device)]


def forbid(home: Home, window: str) -> list[Json]:
    """The other user's household's consumption of the window: never in this one's answers."""
    return [{**_n("consumption", window), "household": home.other}]


def energy(home: Home, user: str, window: str) -> Json:
    return _turn(
        user,
        "energy",
        "answer",
        window=window,
        numbers=energy_numbers(home, window),
        forbid=forbid(home, window),
    )


def cost(home: Home, user: str, window: str) -> Json:
    return _turn(user, "cost", "answer", window=window, numbers=cost_numbers(window))


def device(user: str, name: str, window: str) -> Json:
    return _turn(user, "energy", "answer", window=window, numbers=device_numbers(name, window))


def compare(
    user: str, window: str, *measured: str, branch: str = "energy", figure: str = "consumption"
) -> Json:
    """A comparison routed to `window`, stating `figure` of each `measured` window (the cut one
    written `like:WHOLE~RUNNING`)."""
    return _turn(user, branch, "answer", window=window, numbers=[_n(figure, w) for w in measured])


def device_cost(user: str, name: str, window: str) -> Json:
    return _turn(user, "cost", "answer", window=window, numbers=device_cost_numbers(name, window))


# -- flows: each yields (tag, turns) for one home ---------------------------------------

Flow = Iterator[tuple[str, list[Json]]]

ASK_ENERGY = {
    "yesterday": "how much energy did I use yesterday?",
    "days:-2:-2": "how much electricity did I use 2 days ago?",
    "last_3_days": "what was my consumption over the last 3 days?",
    "today": "how much have I used today?",
}
DAY_BEFORE = ("and the day before?", "and the one before that?")


def day_chains(home: Home) -> Flow:
    """A day, then the day before it, and the one before that: each shifts the last."""
    starts = {"yesterday": -1, "days:-2:-2": -2}
    for first, offset in starts.items():
        for length in (2, 3):
            turns = [energy(home, ASK_ENERGY[first], first)]
            for k in range(1, length):
                d = offset - k
                turns.append(energy(home, DAY_BEFORE[k - 1], f"days:{d}:{d}"))
            yield "follow.window", turns
    turns = [cost(home, "what did I spend yesterday?", "yesterday")]
    turns.append(cost(home, "and the day before?", "days:-2:-2"))
    turns.append(cost(home, "and the one before that?", "days:-3:-3"))
    yield "follow.cost", turns


def week_follow(home: Home) -> Flow:
    yield (
        "follow.cost",
        [
            cost(home, "what did I spend on electricity last week?", "last_week"),
            cost(home, "and the week before?", "week:-2"),
        ],
    )
    yield (
        "follow.window",
        [
            energy(home, "how much energy did I use last week?", "last_week"),
            energy(home, "and the week before?", "week:-2"),
        ],
    )
    yield (
        "follow.branch",
        [
            energy(home, "how much did I use yesterday?", "yesterday"),
            cost(home, "and in euros?", "yesterday"),
            cost(home, "same for the day before", "days:-2:-2"),
        ],
    )
    yield (
        "follow.branch",
        [
            cost(home, "what did electricity cost me today?", "today"),
            energy(home, "and how much energy was that?", "today"),
        ],
    )


def device_follow(home: Home) -> Flow:
    """One device, then another in the same window, then in euros."""
    consumers = home.consumers
    for i, first in enumerate(consumers):
        second = consumers[(i + 1) % len(consumers)]
        for window, when in (("yesterday", "yesterday"), ("today", "today")):
            turns = [
                device(f"how much did the {first.lower()} use {when}?", first, window),
                device(f"what about the {second.lower()}?", second, window),
            ]
            if window == "yesterday":
                turns.append(device_cost("and in euros?", second, window))
            yield "follow.device", turns
    first = consumers[0]
    yield (
        "follow.device",
        [
            device_cost(f"what did the {first.lower()} cost yesterday?", first, "yesterday"),
            device_cost("and the day before?", first, "days:-2:-2"),
            device("how many kWh was that?", first, "days:-2:-2"),
        ],
    )


def compare_flows(home: Home) -> Flow:
    yield (
        "compare",
        [
            energy(home, "how much energy did I use yesterday?", "yesterday"),
            compare("compare that with today", "yesterday", "like:yesterday~today", "today"),
        ],
    )
    yield (
        "compare",
        [
            compare(
                "did I use more energy today than yesterday?",
                "today",
                "today",
                "like:yesterday~today",
            ),
            compare(
                "and what did that cost?",
                "today",
                "today",
                "like:yesterday~today",
                branch="cost",
                figure="cost",
            ),
        ],
    )
    yield (
        "compare",
        [
            # Last month's same span lies before the readings: only this month is listed.
            compare("how does this month compare to last month?", "this_month", "this_month"),
            _turn("thanks!", "smalltalk", "smalltalk"),
        ],
    )
    yield (
        "compare",
        [
            energy(home, "how much energy did I use last week?", "last_week"),
            compare(
                "compare that with this week",
                "last_week",
                "like:last_week~this_week",
                "this_week",
            ),
        ],
    )


def carry_over_smalltalk(home: Home) -> Flow:
    """Thanks between two questions: the follow-up still reads the question before."""
    yield (
        "follow.smalltalk",
        [
            energy(home, "how much energy did I use yesterday?", "yesterday"),
            _turn("thanks!", "smalltalk", "smalltalk"),
            energy(home, "and the day before?", "days:-2:-2"),
        ],
    )
    yield (
        "follow.smalltalk",
        [
            _turn("hi", "smalltalk", "smalltalk"),
            energy(home, "how much have I used today?", "today"),
            _turn("great, thank you", "smalltalk", "smalltalk"),
        ],
    )
    yield (
        "follow.smalltalk",
        [
            _turn("how are you today?", "smalltalk", "smalltalk"),
            cost(home, "what did I spend yesterday?", "yesterday"),
        ],
    )


def refusals(home: Home) -> Flow:
    yield (
        "refusal",
        [
            _turn("what's the weather going to be tomorrow?", "out_of_scope", "refusal"),
            energy(home, "ok, how much energy did I use yesterday then?", "yesterday"),
        ],
    )
    yield (
        "refusal",
        [
            energy(home, "how much have I used today?", "today"),
            _turn(
                "and how much did my neighbour use?",
                "out_of_scope",
                "refusal",
                forbid=forbid(home, "today"),
            ),
        ],
    )


def actions(home: Home) -> Flow:
    for said, name in home.switchable:
        off = {"op": "SET_POWER", "device_name": name, "value": "OFF"}
        on = {"op": "SET_POWER", "device_name": name, "value": "ON"}
        yield (
            "consent",
            [
                _turn(f"turn off the {said}", "action", "proposal"),
                _turn("ok thanks", "consent", "none"),
                _turn("yes", "consent", "command", command=off),
            ],
        )
        yield (
            "consent",
            [
                _turn(f"switch on the {said}", "action", "proposal"),
                _turn("no", "consent", "none"),
            ],
        )
        yield (
            "consent",
            [
                _turn(f"please turn the {said} off", "action", "proposal"),
                _turn("how much did I use yesterday?", "energy", "answer", window="yesterday"),
                _turn("yes", "smalltalk", "none"),
            ],
        )
        yield (
            "consent",
            [
                energy(home, "how much have I used today?", "today"),
                _turn(f"turn on the {said}", "action", "proposal"),
                _turn("yes", "consent", "command", command=on),
                _turn("thanks", "smalltalk", "smalltalk"),
            ],
        )


def clarifications(home: Home) -> Flow:
    if home.key != "chatham":
        return
    for reply, name in (("the hall one", "Hall heater"), ("the hall heater", "Hall heater")):
        yield (
            "clarify",
            [
                _turn("turn off the heaters", "action", "clarify"),
                _turn(reply, "action", "proposal"),
                _turn(
                    "yes",
                    "consent",
                    "command",
                    command={"op": "SET_POWER", "device_name": name, "value": "OFF"},
                ),
            ],
        )


def window_swaps(home: Home) -> Flow:
    """One question, then others that only name a window: each keeps the branch."""
    yield (
        "follow.window",
        [
            energy(home, "how much have I used today?", "today"),
            energy(home, "same for yesterday", "yesterday"),
            energy(home, "and the last 3 days?", "last_3_days"),
            energy(home, "what about the last 7 days?", "last_7_days"),
        ],
    )
    yield (
        "follow.window",
        [
            cost(home, "what did I spend yesterday?", "yesterday"),
            cost(home, "and the last 3 days?", "last_3_days"),
            cost(home, "and today?", "today"),
        ],
    )
    yield (
        "follow.window",
        [
            energy(home, "how much electricity did I use this week?", "this_week"),
            energy(home, "and last week?", "last_week"),
            cost(home, "and what did that cost?", "last_week"),
        ],
    )
    yield (
        "follow.window",
        [
            cost(home, "how much have I spent this month?", "this_month"),
            cost(home, "and yesterday?", "yesterday"),
            energy(home, "how many kWh was that?", "yesterday"),
        ],
    )


def aliases(home: Home) -> Flow:
    """Devices by the words people use ("the car", "solar"), as follow-ups."""
    first = home.consumers[0]
    for word, name in home.aliases:
        yield (
            "follow.device",
            [
                device(f"how much did the {first.lower()} use yesterday?", first, "yesterday"),
                device(f"and {word}?", name, "yesterday"),
            ],
        )
    yield (
        "follow.device",
        [
            energy(home, "how much energy did I use yesterday?", "yesterday"),
            _turn(
                "and how much from the grid?",
                "energy",
                "answer",
                window="yesterday",
                numbers=[_n("import", "yesterday")],
            ),
        ],
    )


def explained(user: str, branch: str, window: str, *baselines: str) -> Json:
    """An explanation of `window` against the mean of `baselines`: the window's figure, the
    baseline's and the size of the change (cost when about cost, else consumption)."""
    figure = "cost" if branch == "cost" else "consumption"
    mean = "+".join(baselines)
    numbers = [
        _n(figure, window),
        _n(figure, f"mean:{mean}"),
        _n(figure, f"change:{window}~{mean}"),
    ]
    return _turn(user, branch, "answer", window=window, numbers=numbers)


USUAL_DAYS = ("days:-2:-2", "days:-3:-3", "days:-4:-4")


def explanations(home: Home) -> Flow:
    """Asking why, of the whole house: against the day before, the usual (the mean of the 3
    days before), the same span of yesterday while today runs, and a comparison's window."""
    yield (
        "explain",
        [
            cost(home, "what did I spend yesterday?", "yesterday"),
            explained("why?", "cost", "yesterday", "days:-2:-2"),
            cost(home, "and the day before?", "days:-2:-2"),
        ],
    )
    yield (
        "explain",
        [
            explained(
                "why did I use more yesterday than usual?", "energy", "yesterday", *USUAL_DAYS
            ),
            explained(
                "why did I spend more yesterday than the day before?",
                "cost",
                "yesterday",
                "days:-2:-2",
            ),
        ],
    )
    yield (
        "explain",
        [
            energy(home, "how much have I used today?", "today"),
            explained("why is it so high?", "energy", "today", "like:yesterday~today"),
            explained("why was it so expensive?", "cost", "today", "like:yesterday~today"),
        ],
    )
    yield (
        "explain",
        [
            compare(
                "compare yesterday with the day before", "yesterday", "yesterday", "days:-2:-2"
            ),
            explained("why?", "energy", "yesterday", "days:-2:-2"),
        ],
    )
    yield (
        "explain",
        [
            explained(
                "how come my bill was higher yesterday than usual?",
                "cost",
                "yesterday",
                *USUAL_DAYS,
            ),
            _turn("thanks", "smalltalk", "smalltalk"),
        ],
    )
    yield (
        "explain",
        [
            # Months before the readings began: it says so, and states no figure for them.
            _turn("why is my bill higher than usual?", "cost", "answer", window="this_month"),
            cost(home, "ok, what have I spent so far this month?", "this_month"),
        ],
    )


def projected(user: str, window: str) -> Json:
    """A projection of a running window: the cost so far, then what it is projected to
    reach, with its range."""
    numbers = [_n("cost", window)] + [
        _n(f, window) for f in ("projected_cost", "projected_low", "projected_high")
    ]
    return _turn(user, "cost", "answer", window=window, numbers=numbers)


def projections(home: Home) -> Flow:
    """Asking ahead: this month's bill, today's, this week's; usage ahead and one device's
    cost ahead are not projected, and say so."""
    yield (
        "projection",
        [
            projected("what will my bill be this month?", "this_month"),
            cost(home, "and what have I spent so far this month?", "this_month"),
        ],
    )
    yield (
        "projection",
        [
            cost(home, "what did electricity cost me today?", "today"),
            projected("and what will today cost me by the end of the day?", "today"),
        ],
    )
    yield (
        "projection",
        [
            projected("how much will I pay this week?", "this_week"),
            _turn("thanks", "smalltalk", "smalltalk"),
        ],
    )
    first = home.consumers[0]
    yield (
        "projection",
        [
            _turn("how much energy will I use this month?", "out_of_scope", "refusal"),
            _turn(f"what will the {first.lower()} cost this month?", "out_of_scope", "refusal"),
            projected("ok, what's my projected bill?", "this_month"),
        ],
    )


def advice(home: Home) -> Flow:
    """When energy is cheapest: the fixtures' flat tariff costs the same at every hour; a
    typical run of the device asked about (the median of the 14 days before today)."""
    for said, name in home.switchable:
        yield (
            "advice",
            [
                _turn(
                    f"when is the cheapest time to run the {said}?",
                    "cost",
                    "answer",
                    numbers=[{**_n("typical_run", "days:-14:-1", name)}],
                ),
                device(f"how much did the {said} use yesterday?", name, "yesterday"),
            ],
        )
    yield (
        "advice",
        [
            _turn("is the off-peak rate cheaper?", "cost", "answer"),
            _turn("thanks", "smalltalk", "smalltalk"),
        ],
    )


def unsupported(home: Home) -> Flow:
    """Questions wattwise computes nothing for: an honest answer and no figure, and the
    conversation goes on from the question before."""
    first = home.consumers[0]
    yield (
        "unsupported",
        [
            device(f"how much did the {first.lower()} use yesterday?", first, "yesterday"),
            _turn("why?", "out_of_scope", "refusal"),  # of a device: no computation
            device("and the day before?", first, "days:-2:-2"),
        ],
    )
    yield (
        "unsupported",
        [
            energy(home, "how much energy did I use today?", "today"),
            _turn(f"why did the {first.lower()} switch on?", "out_of_scope", "refusal"),
        ],
    )


def device_costs(home: Home) -> Flow:
    """A consuming device's cost, a window follow-up, then another device."""
    consumers = home.consumers
    for i, first in enumerate(consumers):
        second = consumers[(i + 1) % len(consumers)]
        yield (
            "follow.device",
            [
                device_cost(f"what did the {first.lower()} cost today?", first, "today"),
                device_cost("and yesterday?", first, "yesterday"),
                device_cost(f"what about the {second.lower()}?", second, "yesterday"),
            ],
        )


def whole_comparisons(home: Home) -> Flow:
    """Two whole windows: nothing is cut."""
    yield (
        "compare",
        [
            energy(home, "how much electricity did I use 3 days ago?", "days:-3:-3"),
            compare("compare that with yesterday", "days:-3:-3", "days:-3:-3", "yesterday"),
        ],
    )
    # "the day before" is before the message's first window, not before today.
    yield (
        "compare",
        [
            compare(
                "compare yesterday with the day before", "yesterday", "yesterday", "days:-2:-2"
            ),
            compare(
                "and what did that cost?",
                "yesterday",
                "yesterday",
                "days:-2:-2",
                branch="cost",
                figure="cost",
            ),
        ],
    )


def live_then_usage(home: Home) -> Flow:
    """Whether a device is on now, then "it": the same device, in the follow-up's window."""
    for said, name in home.switchable:
        yield (
            "follow.device",
            [
                _turn(f"is the {said} on right now?", "energy", "answer"),
                device("how much did it use today?", name, "today"),
                device_cost("and what did that cost?", name, "today"),
            ],
        )


FLOWS = (
    day_chains,
    week_follow,
    device_follow,
    compare_flows,
    carry_over_smalltalk,
    refusals,
    actions,
    clarifications,
    window_swaps,
    aliases,
    unsupported,
    device_costs,
    whole_comparisons,
    live_then_usage,
    explanations,
    projections,
    advice,
)


def conversations() -> list[Json]:
    out: list[Json] = []
    for home in HOMES:
        for flow in FLOWS:
            for n, (tag, turns) in enumerate(flow(home), 1):
                out.append(
                    {
                        "id": f"conv-{home.key}-{flow.__name__.replace('_', '-')}-{n:02d}",
                        "category": "conversation",
                        "household": home.key,
                        "tags": [tag],
                        "turns": turns,
                    }
                )
    return out


def render() -> str:
    return "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in conversations())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if PATH.read_text(encoding="utf-8") != text:
            print(f"{PATH} is not what evals.conversations writes", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(text, encoding="utf-8")
    print(f"{PATH}: {len(conversations())} conversations")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
