"""When to run something: "when is the cheapest time to run the dishwasher?", "is the
off-peak rate cheaper?". The answer comes from the household's tariff (tools tariff_advice):
its cheapest hours, or that a flat tariff costs the same at any hour, with a typical run of the
device the message names."""

from __future__ import annotations

from router.grammar import Grammar
from router.message import Message
from router.rules import Decision


def advise(g: Grammar, msg: Message, decision: Decision) -> bool:
    """Whether the message asks when energy is cheapest (to run a device, or at all)."""
    if decision.branch == "action":
        return False
    return g.unsupported["advice"].found(msg.words(), msg.text())
