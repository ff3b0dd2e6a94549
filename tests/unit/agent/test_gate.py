"""The release gate's word rules (agent.gate): a model sentence that says the question back,
or an answer that trails off, is not an answer; nearby sentences that answer are kept."""

from __future__ import annotations

import pytest

from agent.gate import SentenceGate, echoes, trails_off


@pytest.mark.parametrize(
    ("sentence", "question"),
    [
        # What a small real model (Gemma 3 270M behind llama.cpp) answered.
        ("How much energy did I use today?", "How much energy did I use today?"),
        ("how did I use today?", "how much did I use yesterday?"),
        ("So, how much energy did I use today?", "how much energy did I use today?"),
    ],
)
def test_the_question_said_back_is_an_echo(sentence: str, question: str) -> None:
    assert echoes(sentence, question)


@pytest.mark.parametrize(
    ("sentence", "question"),
    [
        ("You used 12.40 kWh today so far.", "how much energy did I use today?"),
        ("Here is what I found.", "how much energy did I use today?"),
        ("Today you used less energy than yesterday.", "did I use more energy today?"),
        ("Yes.", "did I use energy today?"),
    ],
)
def test_an_answer_is_not_an_echo(sentence: str, question: str) -> None:
    assert not echoes(sentence, question)


@pytest.mark.parametrize(
    ("rest", "trails"),
    [
        ("My total consumption for the last 30 days ", True),
        ("and then the heat pump", True),
        ("Figures as of a few minutes ago.", False),
        ("Ask me anything!", False),
        ('He said "done."', False),
        ("You used 12.40 kWh", True),  # kept by the turn if the figure is the server's
        ("   ", False),
    ],
)
def test_what_follows_the_last_sentence_end_may_trail_off(rest: str, trails: bool) -> None:
    assert trails_off(rest) is trails


def test_the_gate_hands_back_what_follows_the_last_sentence_end() -> None:
    gate = SentenceGate()
    assert gate.feed("You used 3 kWh. My total consumption for") == ["You used 3 kWh. "]
    assert gate.flush() == ["My total consumption for"]
