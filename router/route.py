"""`route`: what a chat message is about, decided by rules over word tables, with no model, no
clock and no I/O. The same message and devices always give the same route."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import router.advice as advice
import router.explain as explain
import router.follow as follow
import router.project as project
import router.rules as rules
from router.devices import DeviceRef, household
from router.follow import Previous
from router.grammar import grammar
from router.lexicon import Consent
from router.message import Message, read
from router.rules import ActionRef, Branch
from router.windows import WindowRef

# Branches that answer from the household's figures, and so carry the message's entities.
_DATA_BRANCHES = frozenset({"energy", "cost", "action"})
# With a proposal waiting, smalltalk and these are no answer to it: it is asked again.
_ASK_AGAIN = frozenset({"out_of_scope.topic", "out_of_scope.default", "out_of_scope.empty"})


@dataclass(frozen=True)
class Route:
    branch: Branch
    rule: str  # the rule that decided the branch (router/rules.py), for debugging and evals
    windows: tuple[WindowRef, ...] = ()  # every window named, in order ("compare X to Y")
    devices: tuple[str, ...] = ()  # canonical names, in order of mention, no duplicates
    ambiguous: tuple[str, ...] = ()  # candidates of a mention that fits several, sorted
    action: ActionRef | None = None
    also_report: bool = False  # an action that also asks for figures
    consent: Consent | None = None
    # A follow-up (router.follow): with no window of its own, the previous question's; with
    # `against_previous`, the previous question's window compared with `windows[0]`.
    follows: bool = False
    against_previous: bool = False
    # Asking why (router.explain): explain windows[0] (or, following, the previous
    # question's window) against the previous period, the usual, or windows[1].
    explain: explain.Baseline | None = None
    project: bool = False  # asking ahead (router.project): project windows[0] to its end
    advise: bool = False  # when is it cheapest (router.advice): the tariff, and devices[0]

    @property
    def window(self) -> WindowRef | None:
        """The first window named; None means the caller's default, today."""
        return self.windows[0] if self.windows else None

    @property
    def clarify(self) -> bool:
        """Ask which device before answering: a mention was ambiguous, or an action has no
        single device."""
        return bool(self.ambiguous) or (self.action is not None and self.action.device is None)


def route(
    text: str,
    devices: Sequence[DeviceRef],
    *,
    pending_action: bool,
    previous: Previous | None = None,
    language: str = "en",
) -> Route:
    """The route of one message from a household with `devices`; `pending_action` says whether
    the answer this message follows proposed a change that awaits a yes or no, `previous`
    what that answer was about (None: read the message on its own). ValueError for an
    unknown language."""
    g = grammar(language)
    tokens = g.tokenise(text)
    early = rules.consent(g, text, tokens, pending=pending_action)
    if early is not None:
        return Route(early.branch, early.rule, consent=early.consent)
    home = household(language, tuple(devices))
    msg = read(g, home, tokens)
    decision = rules.decide(g, home, msg)
    if pending_action and (decision.branch == "smalltalk" or decision.rule in _ASK_AGAIN):
        return Route("consent", "consent.unclear")
    if previous is not None:
        replied = follow.which(home, msg, previous)
        if replied is not None:
            return _route(replied.decision, msg, replied)
    if decision.branch != "action":
        why = explain.explain(g, msg, decision, previous)
        if why is not None:
            return Route(
                why.branch, why.rule, windows=why.windows, follows=why.follows, explain=why.baseline
            )
        if advice.advise(g, msg, decision):
            named = tuple(dict.fromkeys(n for m in msg.mentions for n in m.devices))
            unclear = {n for m in msg.mentions for n in m.candidates} - set(named)
            return Route(
                "cost", "advice.cost", devices=named, ambiguous=tuple(sorted(unclear)), advise=True
            )
        ahead = project.project(g, msg, decision)
        if ahead is not None:
            return Route("cost", "project.cost", windows=ahead, project=True)
        unsupported = rules.unsupported(g, msg, decision)
        if unsupported is not None:
            return Route(unsupported.branch, unsupported.rule)
    if decision.branch not in _DATA_BRANCHES:
        return Route(decision.branch, decision.rule)
    named = tuple(dict.fromkeys(name for m in msg.mentions for name in m.devices))
    unclear = {name for m in msg.mentions for name in m.candidates} - set(named)
    if previous is not None and decision.branch != "action":
        followed = follow.follow(g, msg, decision, named, previous)
        if followed is not None:
            return _route(
                followed.decision,
                msg,
                dataclasses.replace(followed, ambiguous=tuple(sorted(unclear))),
            )
    return Route(
        decision.branch,
        decision.rule,
        windows=tuple(msg.windows),
        devices=named,
        ambiguous=tuple(sorted(unclear)),
        action=decision.action,
        also_report=decision.also_report,
    )


def _route(decision: rules.Decision, msg: Message, f: follow.Followed) -> Route:
    return Route(
        decision.branch,
        decision.rule,
        windows=tuple(msg.windows),
        devices=f.devices,
        ambiguous=f.ambiguous,
        action=decision.action,
        follows=f.follows,
        against_previous=f.against_previous,
    )
