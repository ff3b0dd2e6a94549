"""Asking ahead: "what will my bill be this month?", "what will today cost me?". A projection
(tools project_cost) is of the house's cost over a period still running: today, this week,
this month (the default). Usage ahead, a device's, or a period that has ended stays
unsupported and gets an honest answer."""

from __future__ import annotations

from router.grammar import Grammar
from router.message import Message
from router.rules import Decision, asks_ahead
from router.windows import WindowRef

RUNNING = frozenset({"today", "this_week", "this_month"})
DEFAULT = WindowRef("this_month")


def project(g: Grammar, msg: Message, decision: Decision) -> tuple[WindowRef] | None:
    """The window to project when the message asks what a running period will cost, else
    None."""
    if decision.rule != "cost.keyword" or msg.mentions or not asks_ahead(g, msg):
        return None
    if not g.later_words.isdisjoint(msg.words()):  # "next month": not the running one
        return None
    if len(msg.windows) > 1 or any(w.kind not in RUNNING for w in msg.windows):
        return None
    return (msg.windows[0],) if msg.windows else (DEFAULT,)
