"""Router fuzz: any text up to the chat size limit (random unicode, control characters, the
router's own words and markers, long runs of one piece) routes to a valid route, and the
same route every time. `MESSAGES` is shared with bench/router.py, which runs many more
examples and reports the slowest."""

from __future__ import annotations

import string
from datetime import date
from typing import get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router import Branch, DeviceRef, Route, resolve_window, route
from router.grammar import grammar

MAX_CHARS = 8000  # agent/chat_routes.py: the longest message a client may send
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
_PIECES = (
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
    st.sampled_from(_PIECES),
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
MESSAGES = st.one_of(
    _phrase,
    _long,
    _huge_word,
    st.builds(lambda a, b: (a + " " + b)[:MAX_CHARS], _phrase, st.one_of(_long, _huge_word)),
)


def check(text: str, *, pending: bool) -> Route:
    """Route `text` in HOUSEHOLD and assert the route is one the caller can act on."""
    r = route(text, HOUSEHOLD, pending_action=pending)
    assert r.branch in get_args(Branch)
    assert set(r.devices) <= NAMES
    assert set(r.ambiguous) <= NAMES
    if r.action is not None:
        assert r.action.device is None or r.action.device in NAMES
    assert (r.consent is not None) == (r.branch == "consent")
    for window in r.windows:
        resolve_window(window, TODAY)
    assert route(text, list(HOUSEHOLD), pending_action=pending) == r
    return r


@settings(
    derandomize=True,
    max_examples=150,
    deadline=None,  # speed is bench/router.py's to measure
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(MESSAGES, st.booleans())
def test_any_message_routes(text: str, pending: bool) -> None:
    check(text, pending=pending)


@pytest.mark.parametrize("ending", ["", ".", " the", " it"])
def test_every_lexicon_word_alone_routes(ending: str) -> None:
    """Every word and phrase of the lexicon as the whole message, pending or not: the short
    messages random pieces rarely make (a bare "set" was an IndexError)."""
    for piece in _PIECES:
        for pending in (False, True):
            check(piece + ending, pending=pending)
