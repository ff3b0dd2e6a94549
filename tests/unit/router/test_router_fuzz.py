"""Router fuzz: any text up to the chat size limit (random unicode, control characters, the
router's own words and markers, long runs of one piece) routes to a valid route, and the
same route every time. The strategy and the check are tests/routing.py's, which bench/router.py
runs for many more examples and reports the slowest."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.routing import MESSAGES, PIECES, check


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
    for piece in PIECES:
        for pending in (False, True):
            check(piece + ending, pending=pending)
