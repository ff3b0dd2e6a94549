"""The one list of messages that confirm a proposal (router.lexicon.en), each with a test, and
the near misses that must not."""

from __future__ import annotations

import pytest

from router import DeviceRef, route
from router.lexicon.en import LEXICON
from tests.routing import NEAR_MISSES

DEVICES = [DeviceRef("Dishwasher", "consumer", True), DeviceRef("Heat pump", "consumer", True)]


def test_every_accepted_yes_is_listed_once_and_no_near_miss_is() -> None:
    accepted = LEXICON.consent_yes
    assert len(set(accepted)) == len(accepted)
    plain = {" ".join(m.casefold().replace(",", " ").split()).rstrip(".!") for m in NEAR_MISSES}
    assert plain.isdisjoint(accepted)


@pytest.mark.parametrize("text", sorted(LEXICON.consent_yes))
def test_each_accepted_yes_confirms_with_or_without_capitals_and_a_closing_mark(text: str) -> None:
    for said in (text, text.upper() + "!", text.capitalize() + ".", f"  {text} !! "):
        r = route(said, DEVICES, pending_action=True)
        assert (r.rule, r.consent) == ("consent.yes", "yes"), said
        assert route(said, DEVICES, pending_action=False).rule == "smalltalk.stray_consent"


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_each_near_miss_asks_again_and_with_nothing_proposed_confirms_nothing(text: str) -> None:
    r = route(text, DEVICES, pending_action=True)
    assert (r.branch, r.rule, r.consent) == ("consent", "consent.unclear", None), r
    assert route(text, DEVICES, pending_action=False).branch != "consent"


@pytest.mark.parametrize(
    "text",
    ["no", "No.", "no thanks", "nope, never mind", "cancel", "don't", "not now", "leave it"],
)
def test_a_plain_no_declines(text: str) -> None:
    assert route(text, DEVICES, pending_action=True).consent == "no"


@pytest.mark.parametrize(
    ("text", "branch"),
    [
        ("what did I use yesterday?", "energy"),
        ("what did the heat pump cost this week?", "cost"),
        ("turn off the heat pump", "action"),
        ("no, turn off the heat pump instead", "action"),
    ],
)
def test_a_new_question_or_order_is_answered_as_such(text: str, branch: str) -> None:
    assert route(text, DEVICES, pending_action=True).branch == branch
