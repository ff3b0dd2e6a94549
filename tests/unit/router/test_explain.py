"""Asking why (router.explain): the house's cost or use against the previous period, the
usual or a named window; a follow-up "why?" explains the answer before; a why about a device
or an event stays unsupported."""

from __future__ import annotations

import pytest

from router import Route, WindowRef, route
from router.follow import Previous
from tests.routing import HOME

YESTERDAY = WindowRef("yesterday")
THIS_MONTH = WindowRef("this_month")


def routed(text: str, previous: Previous | None = None) -> Route:
    return route(text, HOME, pending_action=False, previous=previous)


@pytest.mark.parametrize(
    ("text", "branch", "windows", "baseline"),
    [
        ("why is my bill higher than usual?", "cost", (THIS_MONTH,), "usual"),
        ("why is my bill so high?", "cost", (THIS_MONTH,), "previous"),
        ("why is my bill higher than last month?", "cost",
         (THIS_MONTH, WindowRef("last_month")), "previous"),
        ("why did I spend more yesterday?", "cost", (YESTERDAY,), "previous"),
        ("why did I use more yesterday than usual?", "energy", (YESTERDAY,), "usual"),
        ("how come my usage went up this week?", "energy", (WindowRef("this_week"),),
         "previous"),
        ("what caused the increase in my bill?", "cost", (THIS_MONTH,), "previous"),
        ("why did my usage go up yesterday compared to the day before?", "energy",
         (YESTERDAY, WindowRef("before", days=1)), "previous"),
    ],
)  # fmt: skip
def test_a_why_about_the_house_is_an_explanation(
    text: str, branch: str, windows: tuple[WindowRef, ...], baseline: str
) -> None:
    r = routed(text)
    assert (r.branch, r.rule, r.windows, r.explain) == (
        branch,
        f"explain.{branch}",
        windows,
        baseline,
    )
    assert r.devices == ()
    assert not r.follows


@pytest.mark.parametrize(
    ("previous", "text", "branch"),
    [
        (Previous("cost"), "why?", "cost"),
        (Previous("energy"), "why is it so high?", "energy"),
        (Previous("energy"), "why was it so expensive?", "cost"),
        (Previous("cost"), "how come?", "cost"),
    ],
)
def test_why_after_an_answer_about_the_house_explains_that_answer(
    previous: Previous, text: str, branch: str
) -> None:
    r = routed(text, previous)
    assert (r.branch, r.rule, r.follows, r.explain) == (
        branch,
        f"follow.explain.{branch}",
        True,
        "previous",
    )
    assert r.windows == ()  # the previous answer's window


@pytest.mark.parametrize(
    ("text", "previous"),
    [
        ("why did the dryer turn on last night?", None),
        ("why does the heat pump use so much?", None),
        ("why?", Previous("energy", devices=("Heat pump",))),  # a device's: no computation
        ("why?", None),  # nothing to explain
        ("why is it so high?", None),
        ("why?", Previous("smalltalk")),
    ],
)
def test_a_why_wattwise_cannot_answer_stays_unsupported(
    text: str, previous: Previous | None
) -> None:
    r = routed(text, previous)
    assert (r.branch, r.rule, r.explain) == ("out_of_scope", "unsupported.explain", None)


def test_a_why_that_is_its_own_question_after_an_answer_is_read_on_its_words() -> None:
    # "my bill" is not "it": this month, not the day the answer before was about.
    r = routed("why is my bill higher than usual?", Previous("cost"))
    assert (r.rule, r.windows, r.follows) == ("explain.cost", (THIS_MONTH,), False)
