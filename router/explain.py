"""Asking why: "why is my bill higher than usual?", "why did I use more yesterday than the
day before?", "why?" after a cost answer. The explanation (tools explain_cost) is of the
house's cost or use over a window against a baseline: the previous equal period, the usual
(the mean of several before it), or a window the message names ("than last month").

Where it does not fit, the question stays unsupported and gets an honest answer: a why about
a device or an event ("why did the dryer turn on?") has no computation behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from router.follow import Previous
from router.grammar import Grammar
from router.message import Message
from router.rules import Branch, Decision
from router.windows import WindowRef

Baseline = Literal["previous", "usual"]
# Decisions a why can be asked in: the house's money or energy, or nothing of its own
# ("why?", "why is it so high?") after an answer about them.
_OWN = frozenset({"cost.keyword", "energy.keyword"})
_DATA = frozenset({"energy", "cost"})
# A why with no window of its own, and nothing to follow, is about the bill: this month.
DEFAULT = WindowRef("this_month")


@dataclass(frozen=True)
class Explained:
    branch: Branch
    rule: str
    windows: tuple[WindowRef, ...]  # the window explained; a second one is the baseline
    baseline: Baseline
    follows: bool  # the window (and a compared one) is the previous answer's


def explain(
    g: Grammar, msg: Message, decision: Decision, previous: Previous | None
) -> Explained | None:
    """The message as a question for the explanation, or None when it is not one (or is
    one wattwise cannot answer: about a device, about a device switching)."""
    words, text = msg.words(), msg.text()
    if not g.unsupported["explain"].found(words, text):
        return None
    if msg.mentions or not g.state_words.isdisjoint(words):
        return None
    baseline: Baseline = "usual" if not g.usual_words.isdisjoint(words) else "previous"
    windows = tuple(msg.windows)
    if decision.rule in _OWN and not (
        previous is not None and not windows and not g.back_references.isdisjoint(words)
    ):
        if len(windows) == 1 and not g.than_words.isdisjoint(words) and baseline != "usual":
            windows = (DEFAULT, windows[0])  # "why is my bill higher than last month?"
        rule = f"explain.{decision.branch}"
        return Explained(decision.branch, rule, windows or (DEFAULT,), baseline, follows=False)
    if (
        previous is not None
        and previous.branch in _DATA
        and not previous.devices
        and not windows
        and decision.branch in (*_DATA, "out_of_scope")
    ):  # "why?", "why was it so expensive?" after an answer about the house
        branch = decision.branch if decision.rule in _OWN else previous.branch
        return Explained(branch, f"follow.explain.{branch}", (), baseline, follows=True)
    return None
