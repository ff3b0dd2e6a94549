"""Verified numbers: a sentence passes only when each figure it states is one the server
computed, as rounded or converted for display; times and dates are not figures."""

from __future__ import annotations

import pytest

from agent import narrator, verify
from tests.unit.test_narrator import SUMMARY

KNOWN = [12.3456, 0.45, 1234.0, 3.456, 2.0]


@pytest.mark.parametrize(
    "sentence",
    [
        "You used 12.35 kWh today.",
        "You used 12.3 kWh today.",
        "You used 12 kWh today.",
        "That is 12,346 Wh.",  # kWh written in Wh
        "The heat pump took 45% of it.",  # a fraction as a percent
        "The house draws 1.2 kW, that is 1,234 W.",
        "It cost 3.46 EUR over 2 days.",
        "Figures as of 10:41 on 22 Nov 2026, for 2026-11-22.",  # no figures at all
    ],
)
def test_computed_figures_pass_as_displayed(sentence: str) -> None:
    verdict = verify.check(sentence, KNOWN)
    assert verdict.ok, verdict.unsupported


@pytest.mark.parametrize(
    ("sentence", "invented"),
    [
        ("You used 12.4 kWh today.", "12.4 kWh"),  # wrongly rounded
        ("You used 99.99 kWh today.", "99.99 kWh"),
        ("The heat pump took 46% of it.", "46%"),
        ("It cost 3.46 EUR, about 7 EUR a week.", "7 EUR"),
    ],
)
def test_an_invented_figure_is_caught(sentence: str, invented: str) -> None:
    verdict = verify.check(sentence, KNOWN)
    assert [f.text for f in verdict.unsupported] == [invented]


def test_every_narrator_sentence_checks_out_against_its_result() -> None:
    known = verify.facts(SUMMARY.model_dump(mode="json"))
    for sentence in narrator.energy(SUMMARY):
        verdict = verify.check(sentence, known)
        assert verdict.ok, (sentence, verdict.unsupported)
        assert verdict.checked or sentence.startswith("Figures as of")


def test_text_splits_into_sentences() -> None:
    assert verify.sentences('You used 1.50 kWh. "Oven" used most! Why? ok') == [
        "You used 1.50 kWh.",
        '"Oven" used most!',
        "Why? ok",
    ]
