"""agent.dialogue's recognition of the server's own last answer in a thread."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from agent import dialogue


@dataclass(frozen=True)
class M:
    role: str
    content: str


def test_the_key_ignores_how_whitespace_was_joined_and_nothing_else() -> None:
    k = dialogue.key("turn off the heater", 'Shall I switch "Heater" off? Please answer.')
    assert (
        dialogue.key(" turn off  the heater\n", 'Shall I switch "Heater" off?\n Please answer.')
        == k
    )
    assert dialogue.key("turn off the heater", 'Shall I switch "Heater" on? Please answer.') != k
    assert dialogue.key("turn off the heaters", 'Shall I switch "Heater" off? Please answer.') != k
    # The boundary between question and answer is part of the key.
    assert dialogue.key("a b", "c") != dialogue.key("a", "b c")


def test_only_the_answer_right_before_the_new_message_counts() -> None:
    q, a = M("user", "turn off the heater"), M("assistant", "Shall I?")
    assert dialogue.previous_exchange([q, a, M("user", "yes")]) == (
        "turn off the heater",
        "Shall I?",
    )
    assert dialogue.previous_exchange([M("user", "yes")]) is None
    assert dialogue.previous_exchange([a, M("user", "yes")]) is None
    # An answer followed by another user message first: the new message does not follow it.
    assert dialogue.previous_exchange([q, a, M("user", "hm"), M("user", "yes")]) is None
    assert dialogue.previous_exchange([M("assistant", "hi"), a, M("user", "yes")]) is None


def test_a_state_survives_its_record() -> None:
    import json

    state = dialogue.State(
        branch="action",
        rule="action.power",
        window=dialogue.Span("dates", date(2026, 11, 2), date(2026, 11, 8)),
        devices=("Heater",),
        proposal="abcdefghijklmnop",
        asked=dialogue.Asked("action", ("Heater", "Hall heater"), "SET_POWER", "OFF"),
    )
    assert dialogue.State.load(json.loads(state.dump())) == state
    assert dialogue.State.load({**json.loads(state.dump()), "v": 0}) is None
