"""Router test data: the households the router tests route in, and hostile messages as a
hypothesis strategy with the check every routed message must pass. Shared by the router's
unit tests and bench.router, which runs many more examples and reports the slowest.
"""

from __future__ import annotations

import string
from datetime import date
from typing import get_args

from hypothesis import strategies as st

from router import Branch, DeviceRef, Route, resolve_window, route
from router.grammar import grammar
from service.routes.chat import MAX_CHARS

__all__ = ["HOME", "HOUSEHOLD", "MAX_CHARS", "MESSAGES", "PIECES", "check"]

# The household of the router's table tests and its limits.
HOME = (
    DeviceRef("Dishwasher", "consumer", True),
    DeviceRef("Dryer", "consumer", True),
    DeviceRef("Heat pump", "consumer", True),
    DeviceRef("Pool pump", "consumer", True),
    DeviceRef("EV charger", "ev_charger", True),
    DeviceRef("Solar roof", "solar", False),
    DeviceRef("Home battery", "battery", True),
    DeviceRef("Fridge", "consumer", False),
    DeviceRef("Oven", "consumer", True),
    DeviceRef("Kettle", "consumer", True),
)
# The fuzzed household: names that share words ("pump", "heater"), and a grid meter.
HOUSEHOLD = (
    DeviceRef("Dishwasher", "consumer", True),
    DeviceRef("Washing machine", "consumer", True),
    DeviceRef("Dryer", "consumer", True),
    DeviceRef("Heat pump", "consumer", True),
    DeviceRef("Pool pump", "consumer", True),
    DeviceRef("EV charger", "ev_charger", True),
    DeviceRef("Solar roof", "solar", False),
    DeviceRef("Grid meter", "grid", False),
    DeviceRef("Home battery", "battery", True),
    DeviceRef("Fridge", "consumer", False),
    DeviceRef("Upstairs heater", "consumer", True),
    DeviceRef("Downstairs heater", "consumer", True),
)
NAMES = frozenset(d.name for d in HOUSEHOLD)
TODAY = date(2026, 11, 25)

# What the router reads: its lexicon, the household's names (whole, run together, misspelt),
# window phrases, and text shaped like its internal markers.
PIECES = (
    *sorted(grammar("en").known),
    *(d.name for d in HOUSEHOLD),
    *("heatpump", "diswashr", "dish washer", "heaters", "pumps", "the car", "solar"),
    *("last 3 days", "since monday", "from nov 1 to nov 10", "2026-02-30", "the 31st", "3 days"),
    *("turn off", "turn the dryer off", "yes", "no thanks", "and", ",", ".", "?", "'s", "-"),
    *("\x00", "\x000", "\x01", "\x010", "\x00\x01", "\ud800", "\u200b", "\u202e", "a\u0301"),
    *("🔥", "⚡️", "ß", "İ", "ﬁ", "漢字", "Ω", "٣", "\uff11\uff12", "9" * 40, "1.5.5"),
    *("99999 A", "120 %", "limit the car to 1e9 A"),
)
_piece = st.one_of(
    st.sampled_from(PIECES),
    st.text(max_size=30),  # any code point but a surrogate (one is among the pieces)
    st.text(string.ascii_lowercase, min_size=4, max_size=40),  # unknown words, misspelt ones
)
_phrase = st.lists(_piece, max_size=40).map(" ".join)


def _repeated(piece: str, times: int, glue: str) -> str:
    return ((piece + glue) * times)[:MAX_CHARS]


_long = st.builds(
    _repeated,
    _phrase,
    st.integers(1, MAX_CHARS),
    st.sampled_from(["", " ", ", ", "\n", "\x00"]),
)
_huge_word = st.builds(
    lambda letters, n: (letters * (MAX_CHARS // max(len(letters), 1)))[:n],
    st.text(string.ascii_lowercase + "éø漢", min_size=1, max_size=64),
    st.integers(6, MAX_CHARS),
)
# Any text up to the chat size limit: random unicode, control characters, the router's own
# words and markers, long runs of one piece.
MESSAGES = st.one_of(
    _phrase,
    _long,
    _huge_word,
    st.builds(lambda a, b: (a + " " + b)[:MAX_CHARS], _phrase, st.one_of(_long, _huge_word)),
)


def check(text: str, *, pending: bool) -> Route:
    """Route `text` in HOUSEHOLD and assert the route is one the caller can act on. (pytest
    does not rewrite this module's asserts: each names the route it failed on.)"""
    r = route(text, HOUSEHOLD, pending_action=pending)
    assert r.branch in get_args(Branch), r
    assert set(r.devices) <= NAMES, r
    assert set(r.ambiguous) <= NAMES, r
    if r.action is not None:
        assert r.action.device is None or r.action.device in NAMES, r
    assert r.rule.startswith("consent.") == (r.branch == "consent"), r
    assert (r.consent is not None) == (r.rule in ("consent.yes", "consent.no")), r
    for window in r.windows:
        resolve_window(window, TODAY)
    assert route(text, list(HOUSEHOLD), pending_action=pending) == r, "not the same route again"
    return r


# Messages that sound like assent and are not the plain yes (the probing of issue 18, and
# more): each has the proposal asked again and sends nothing.
NEAR_MISSES = (
    "ok",
    "ok.",
    "OK!",
    "okay",
    "okay thanks",
    "ok thanks",
    "ok so",
    "ok 👍",
    "ok?",
    "sure",
    "sure?",
    "Sure.",
    "sure, tell me more",
    "k",
    "kk",
    "y",
    "go",
    "why not?",
    "alright then",
    "sounds good",
    "yes 🙂",
    "yesss",
    "yes?",
    "yes yes",
    "yes but not that one",
    "yes, but how much did I use today?",
    "yes. turn off the heat pump too",
    "thanks",
    "hello",
    "👍",
)
