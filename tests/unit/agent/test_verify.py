"""Verified numbers: a sentence passes only when each figure it states is one the server
computed, as rounded or converted for display; times and dates are not figures."""

from __future__ import annotations

import pytest

from agent import narrator, verify
from tests.unit.agent.test_narrator import SUMMARY

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


# -- the user's own numbers ------------------------------------------------------------

HEATER = [10.26, 1.2, 0.35]  # today's kWh, the heater's kW now, its share


def _asked(text: str) -> list[verify.Stated]:
    return verify.stated(text)


@pytest.mark.parametrize(
    ("question", "sentence"),
    [
        ("did the heater use 999 kWh today?", "Your heater used 999 kWh today."),
        ("did the heater use 999 kWh today?", "Yes, the heater used 999 kWh."),
        ("did the heater use 999 kWh today?", "As you said, the heater used 999 kWh today."),
        ("did the heater use 999 kWh today?", "You asked, and your heater used 999 kWh."),
        ("did the heater use 999kwh today?", "The heater used 999,000 Wh today."),
        ("is the heater over 4 kW?", "Yes, the heater draws 4 kW right now."),
        ("is the heater over 4 kW?", "Yes, the heater draws more than 4 kW."),  # unchecked
        ("is the heater over 4 kW?", "Yes, it draws 1.2 kW, more than 4 kW."),  # false
        ("is the heater over 4 kW?", "Yes, 4 kW is below what the heater draws (1.2 kW)."),
    ],
)
def test_a_users_number_stated_as_a_measurement_is_not_verified(
    question: str, sentence: str
) -> None:
    verdict = verify.check(sentence, HEATER, asked=_asked(question))
    assert not verdict.ok, verdict
    assert verify.check(sentence, [*HEATER, 999.0, 4.0]).ok  # as the ledger had it before


@pytest.mark.parametrize(
    ("question", "sentence"),
    [
        ("did the heater use 999 kWh today?", "You asked about 999 kWh; it used 10.26 kWh."),
        ("did the heater use 999 kWh today?", "It used 10.26 kWh, not 999 kWh."),
        ("did the heater use 999 kWh today?", "It used 10.26 kWh, less than 999 kWh."),
        ("did the heater use 999 kWh today?", "No: 999 kWh is far more than its 10.26 kWh."),
        ("is the heater over 4 kW?", "Yes, 4 kW is above what the heater draws (1.2 kW)."),
        ("is the heater over 4 kW?", "No, it draws 1,200 W, below the 4 kW threshold you set."),
        ("is the heater over 4kw?", "It draws 1.2 kW, under your limit of 4,000 W."),
        ("set an alert at 4 kW", "I can't set an alert at 4 kW, but it draws 1.2 kW now."),
        ("how much in the last 3 days?", "In the last 3 days the heater used 10.26 kWh."),
    ],
)
def test_a_users_number_may_be_repeated_as_the_users(question: str, sentence: str) -> None:
    verdict = verify.check(sentence, HEATER, asked=_asked(question))
    assert verdict.ok, verdict.unsupported
    assert verdict.quoted


def test_digits_in_a_device_name_are_not_figures() -> None:
    names = ("EV charger 2",)
    asked = verify.stated("how much did EV charger 2 use?", names)
    assert asked == []
    assert verify.check('"EV charger 2" used 10.26 kWh today.', HEATER, asked, names).ok


def test_a_users_number_repeated_as_theirs_is_checked_beside_the_same_number_unsupported() -> None:
    sentence = "You asked about 999 kWh, and it used 999 kWh."
    verdict = verify.check(sentence, HEATER, asked=_asked("did it use 999 kWh?"))
    [typed] = _asked("999 kWh")
    assert verdict.quoted == verdict.checked == (typed,)
    assert verdict.unsupported == (typed,)


def test_a_users_number_that_rounds_to_a_computed_figure_is_still_the_users() -> None:
    # "is the EV charger drawing more than 4 kW?": some other figure of the turn is 4.1.
    asked = _asked("is the EV charger drawing more than 4 kW right now?")
    claimed = verify.check("Yes, the meter measured 4 kW in that period.", [4.1, 31.83], asked)
    assert [f.text for f in claimed.unsupported] == ["4 kW"]
    repeated = verify.check("You asked about 4 kW.", [4.1], asked)
    assert repeated.ok
    assert [f.text for f in repeated.quoted] == ["4 kW"]


def test_a_computed_figure_stated_more_precisely_than_the_users_number_is_the_servers() -> None:
    # "more than 5 kWh?" and the heater used exactly 5.00 kWh: the narrator's answer stands.
    asked = _asked("did the heater use more than 5 kWh today?")
    verdict = verify.check('"Heater" used 5.00 kWh today so far.', [5.0, 1.2], asked)
    assert verdict.ok
    assert [f.text for f in verdict.checked] == ["5.00 kWh"]
    assert verdict.quoted == ()


PROJECTION_RESULT = {
    "cost_so_far": 20.09,
    "daily_mean_cost": 2.21,
    "projected_cost": 25.79,
    "projected_low": 25.46,
    "projected_high": 26.13,
}


def test_a_projected_figure_is_kept_apart_from_the_measured_ones() -> None:
    measured, projected = verify.figures(PROJECTION_RESULT)
    assert sorted(measured) == [2.21, 20.09]
    assert sorted(projected) == [25.46, 25.79, 26.13]
    assert verify.facts(PROJECTION_RESULT) == measured
    nested = {"a": [{"projected": {"x": 1.5}}, 2.0]}
    assert verify.figures(nested) == ([2.0], [1.5])


@pytest.mark.parametrize(
    ("sentence", "ok"),
    [
        ("It is projected to reach about 25.79 EUR by the end of the month.", True),
        ("You are on course for 25.79 EUR, between 25.46 EUR and 26.13 EUR.", True),
        ("Expect about 25.79 EUR this month.", True),
        ("Your bill this month is 25.79 EUR.", False),  # a projection stated as a measurement
        ("You have spent 26.13 EUR.", False),
        ("You have spent 20.09 EUR so far.", True),  # measured: no projection word needed
    ],
)
def test_a_projected_figure_passes_only_as_a_projection(sentence: str, ok: bool) -> None:
    known, projected = verify.figures(PROJECTION_RESULT)
    assert verify.check(sentence, known, projected=projected).ok is ok
