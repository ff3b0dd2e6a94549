"""Asking ahead (router.project): what the house's bill for a running period is on course
to be is a projection; usage ahead, a device's cost ahead and a period that has ended are
not, and stay an honest "I can't"."""

from __future__ import annotations

import pytest

from router import WindowRef, route
from tests.routing import HOME


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("what will my bill be this month?", "this_month"),
        ("what's my projected bill?", "this_month"),
        ("what will my bill be at the end of the month?", "this_month"),
        ("what will today cost me?", "today"),
        ("will it be expensive today?", "today"),
        ("how much will I pay this week?", "this_week"),
        ("am I on track to spend more than 100 EUR this month?", "this_month"),
    ],
)
def test_the_cost_ahead_of_a_running_period_is_a_projection(text: str, window: str) -> None:
    r = route(text, HOME, pending_action=False)
    assert (r.branch, r.rule, r.project, r.windows) == (
        "cost",
        "project.cost",
        True,
        (WindowRef(window),),
    )


@pytest.mark.parametrize(
    "text",
    [
        "how much will I use this month?",  # usage ahead
        "what will the heat pump cost this month?",  # a device's cost ahead
        "what was my bill going to be last month?",  # over
        "what will my bill be next year?",
    ],
)
def test_what_is_not_projected_says_so(text: str) -> None:
    r = route(text, HOME, pending_action=False)
    assert (r.branch, r.rule, r.project) == ("out_of_scope", "unsupported.projection", False)


@pytest.mark.parametrize("text", ["what did it cost today?", "how much will today cost me so far"])
def test_what_it_did_cost_is_not_a_projection(text: str) -> None:
    r = route(text, HOME, pending_action=False)
    assert (r.branch, r.rule, r.project) == ("cost", "cost.keyword", False)


@pytest.mark.parametrize(
    "text", ["what will my bill be next month?", "what will tomorrow cost me?"]
)
def test_a_period_after_the_running_one_is_not_projected(text: str) -> None:
    r = route(text, HOME, pending_action=False)
    assert (r.branch, r.project) == ("out_of_scope", False)
