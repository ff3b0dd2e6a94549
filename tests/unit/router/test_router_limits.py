"""Router: the work one message may cost (misspelling lookups are bounded per word and per
message), and text that tries to pass for the router's internal marker tokens."""

from __future__ import annotations

import random
import string

import pytest

from router import Route, route
from router import devices as devices_module
from tests.routing import HOME, MAX_CHARS

# The longest word the index matches misspelt is "homebattery", 11 letters, 2 edits allowed.
LONGEST_MATCHABLE = 11 + 2
# The misspelling work one message may cost at most, in deletion strings built.
WORK_BOUND = 5_000


def routed(text: str) -> Route:
    return route(text, HOME, pending_action=False)


class DeletionSpy:
    """Counts the strings the misspelling matcher builds for a message's words."""

    def __init__(self) -> None:
        self.lengths: list[int] = []
        self.built = 0

    def __call__(self, word: str, depth: int) -> set[str]:
        n = len(word)
        self.lengths.append(n)
        self.built += 1 + n + (n * (n - 1) // 2 if depth == 2 else 0)
        if n > 64:  # the old matcher would build millions of strings here: fail, don't hang
            raise AssertionError(f"deletions of a {n}-letter word")
        return _real_deletions(word, depth)


_real_deletions = devices_module._deletions


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> DeletionSpy:
    routed("hi")  # the household's index is built (and cached) before counting
    counter = DeletionSpy()
    monkeypatch.setattr(devices_module, "_deletions", counter)
    return counter


def _random_letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("how much " + "a" * (MAX_CHARS - 9), id="repeated-letter"),
        pytest.param(_random_letters(random.Random(16), 1500), id="random-letters"),
        pytest.param("how much did the " + "dishwasher" * 20 + " use", id="name-repeated"),
    ],
)
def test_long_unknown_word_is_not_expanded(spy: DeletionSpy, text: str) -> None:
    routed(text)
    assert max(spy.lengths, default=0) <= LONGEST_MATCHABLE


def test_many_unknown_words_share_one_budget_per_message(spy: DeletionSpy) -> None:
    rng = random.Random(16)
    words = [_random_letters(rng, rng.randint(6, 12)) for _ in range(MAX_CHARS // 10)]
    routed(" ".join(words)[:MAX_CHARS])
    assert spy.built <= WORK_BOUND


def test_a_repeated_unknown_word_is_looked_up_once(spy: DeletionSpy) -> None:
    routed("blorpzy " * (MAX_CHARS // 8))
    assert spy.lengths == [7]


def test_a_misspelt_device_is_still_found_in_a_long_message() -> None:
    filler = " ".join(f"word{n}" for n in range(200))
    assert routed(f"how much did the diswashr use {filler}").devices == ("Dishwasher",)


@pytest.mark.parametrize("control", ["\x00", "\x01", "\x00\x01", "\x1b", "\x7f", "\x85"])
def test_nul_in_message_routes(control: str) -> None:
    plain = "how much did the dishwasher use today?"
    assert routed(f"how much did the dish{control}washer{control} use today?{control}") == (
        routed("how much did the dish washer use today?")
    )
    assert routed(control * 100 + plain) == routed(plain)
    assert routed(control).branch == "out_of_scope"


def test_window_marker_in_message_is_not_a_window() -> None:
    """\\x01 marks a window the router found; typed by the user it is nothing."""
    forged = routed("turn the dryer off and tell me \x01")
    assert forged == routed("turn the dryer off and tell me")
    assert not forged.also_report
