"""Reading a message against the answer before it: a follow-up inherits that question's
branch, window and devices unless it names its own ("and the week before?", "what about the
fridge?", "and in euros?"), "compare that with last month" compares that window with the new
one, and a reply to "which one do you mean?" completes the request it interrupted ("the hall
one"). Clock-free like the rest of the router: the window a follow-up inherits is the
caller's to resolve (Route.follows)."""

from __future__ import annotations

from dataclasses import dataclass

from router.devices import Household
from router.grammar import Grammar
from router.message import Message
from router.rules import ActionRef, Branch, Decision, op_rule

_DATA = frozenset({"energy", "cost"})
# Rules of a message that is all entity and no request of its own: "the fridge?", "and
# yesterday?" (rules.decide, 8).
_ELLIPTICAL = frozenset({"energy.device", "energy.window"})


@dataclass(frozen=True)
class Previous:
    """What the answer a message follows was about (agent.dialogue records it)."""

    branch: Branch
    devices: tuple[str, ...] = ()
    asked: tuple[str, ...] | None = None  # it asked which of these devices (empty: any)
    action: ActionRef | None = None  # the order that waits for its device


@dataclass(frozen=True)
class Followed:
    decision: Decision
    devices: tuple[str, ...]
    ambiguous: tuple[str, ...]
    follows: bool  # the window is the previous question's unless the message names one
    against_previous: bool = False  # compare the previous question's window with this one


def opens(g: Grammar, msg: Message) -> bool:
    """Whether the message opens like a follow-up: "and ...", "what about ...", "same for"."""
    return g.openers.at(g.words(msg.tokens), 0) is not None


def which(home: Household, msg: Message, previous: Previous) -> Followed | None:
    """A reply naming one of the devices the previous answer asked about: the interrupted
    request with that device. None when the message is not such a reply."""
    if previous.asked is None or not msg.mentions:
        return None
    offered = set(previous.asked) or set(home.devices)
    named = {n for m in msg.mentions for n in m.devices} & offered
    unclear = {n for m in msg.mentions for n in m.candidates} & offered
    if not named and not unclear:
        return None
    device = named.pop() if len(named) == 1 and not unclear else None
    order = previous.action
    if order is not None:
        rule = op_rule(order.op)
        if device is not None and not home.devices[device].controllable:
            rule = "action.not_controllable"
        action = ActionRef(order.op, order.value, device)
        ambiguous = () if device else tuple(sorted(named | unclear))
        return Followed(
            Decision("action", rule, action), (device,) if device else (), ambiguous, False
        )
    if previous.branch not in _DATA:
        return None
    if device is None:
        return Followed(
            Decision(previous.branch, "follow.which"), (), tuple(sorted(named | unclear)), True
        )
    return Followed(Decision(previous.branch, "follow.which"), (device,), (), True)


def follow(
    g: Grammar, msg: Message, decision: Decision, devices: tuple[str, ...], previous: Previous
) -> Followed | None:
    """The message as a follow-up of a question about energy or cost, or None when it asks
    on its own: a message that names its request outright ("how much did I use
    yesterday?") is read on its words alone."""
    if previous.branch not in _DATA or decision.branch not in _DATA:
        return None
    opener = opens(g, msg)
    words = msg.words()
    compares = not g.compare_words.isdisjoint(words) and len(msg.windows) == 1
    back = not g.back_references.isdisjoint(words)
    # "how many kWh was that?": a back reference and nothing of its own to be about; "how
    # much did it use today?" after a question about a device: that device, in its own window.
    about_that = back and not devices and (not msg.windows or bool(previous.devices))
    if not (opener or decision.rule in _ELLIPTICAL or (compares and back) or about_that):
        return None
    # Its own money or energy words decide the branch ("and in euros?"); else the previous.
    own = decision.rule in ("cost.keyword", "energy.keyword", "energy.device_state")
    branch = decision.branch if own else previous.branch
    rule = f"follow.{branch}"
    return Followed(
        Decision(branch, rule),
        devices or previous.devices,
        (),
        follows=True,
        against_previous=compares and (back or opener),
    )
