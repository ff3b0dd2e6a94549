"""Verified numbers: every figure a sentence states must be one the server computed for
this turn (the context's facts and the tool results), allowing display rounding and the
unit changes people use: Wh/kWh, W/kW, a fraction as a percent. Times and dates are not
figures and are not checked, nor are digits inside a device's name ("EV charger 2").

A number the user typed is the user's, never a measurement: a sentence may repeat it only
as the user's, in the clause where it stands:

    attributed      "you asked about 999 kWh", "your limit of 4 kW", "the 4 kW threshold"
    the user's window   "in the last 3 days"
    compared        "10.26 kWh, less than 999 kWh", "4 kW is above what it draws (1.2 kW)",
                    "10.26 kWh, not 999 kWh": only with a computed figure of the same kind
                    in the sentence that bears the comparison out (the nearest one)

"Your heater used 999 kWh" is none of these and fails, as does "more than 4 kW" with no
computed figure to compare: the comparison would be a measurement nobody checked.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

# A number, optionally with thousands separators, and the unit right after it.
_NUMBER = re.compile(
    r"(?<![\w.])(-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?)\s*"
    r"(kwh|wh|kw|w|%|percent|[a-z]{3}\b)?",
    re.IGNORECASE,
)
# Spans that hold digits but no figure: clock times, ISO dates and day-month dates, years.
_NOT_FIGURES = re.compile(
    r"\b\d{1,2}:\d{2}(?::\d{2})?\b"
    r"|\b\d{4}-\d{2}-\d{2}(?:[T ][\d:.+Z-]+)?"
    r"|\b\d{1,2}(?:st|nd|rd|th)?\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b"
    r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\s+\d{1,2}(?:st|nd|rd|th)?\b"
    r"|\b(?:19|20)\d{2}\b",
    re.IGNORECASE,
)
# A sentence that says its figure is projected, not measured.
_PROJECTION = re.compile(
    r"\b(?:project(?:ed|ion|s)?|on (?:course|track)|expect(?:ed|s)?|forecast|likely|"
    r"would (?:reach|end|be)|could (?:reach|end|be)|by the end of)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
# Where a clause ends: a user's number is judged by the words of its own clause.
_CLAUSE_END = re.compile(
    r"[,;:()\u2013\u2014]|\s(?:and|but|while|whereas|although|though|yet)\s", re.IGNORECASE
)
# The clause gives the number to the user.
_ATTRIBUTED = re.compile(
    r"\byou(?:'ve|\s+have|'d|\s+had)?\s+(?:asked|mentioned|said|wrote|typed|gave|suggested|"
    r"set|chose|picked|proposed|requested|wanted|want|named|quoted|meant|guessed)\b"
    r"|\byou(?:'re|\s+are)\s+asking\b"
    r"|\byour\s+(?:question|threshold|limit|target|setting|figure|number|guess|estimate|"
    r"example|value)\b",
    re.IGNORECASE,
)
# Right before or after the number: a setting or threshold, not a reading.
_SETTING_BEFORE = re.compile(
    r"\b(?:threshold|limit|cap|target|setting|reserve|alert|alarm)\s+(?:of|at|to)\s+$",
    re.IGNORECASE,
)
_SETTING_AFTER = re.compile(r"^\s*(?:threshold|limit|cap|target|setting|mark)\b", re.IGNORECASE)
# The user's window: "the last 3 days".
_PERIOD_BEFORE = re.compile(
    r"\b(?:last|past|previous|recent|next|the|these|those|first)\s+$", re.IGNORECASE
)
_PERIOD_AFTER = re.compile(r"^\s*(?:days?|weeks?|months?|hours?|minutes?|years?)\b", re.IGNORECASE)
# A comparison with the user's number: "less than 999 kWh" (the other side is the subject)
# or "999 kWh is more than" (the user's number is).
_GREATER = r"above|over|beyond|exceed(?:s|ed|ing)?|(?:more|higher|greater|bigger|larger)\s+than"
_LESS = r"below|under|(?:less|lower|smaller|fewer)\s+than"
_COMPARED_BEFORE = re.compile(
    rf"\b(?:(?P<gt>{_GREATER})|(?P<lt>{_LESS})|(?P<ge>at\s+least)|(?P<le>at\s+most|up\s+to)"
    r"|(?P<ne>not|rather\s+than|instead\s+of))\s+(?:(?:the|your|a|an)\s+)*$",
    re.IGNORECASE,
)
_COMPARED_AFTER = re.compile(
    r"^\s*(?:is|was|are|were|would\s+be|'s)\s+"
    r"(?:(?:much|far|well|way|a\s+lot|still|already)\s+)?"
    rf"(?:(?P<gt>{_GREATER})|(?P<lt>{_LESS}))\b",
    re.IGNORECASE,
)
_HOLDS: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt,
    "lt": operator.lt,
    "ge": operator.ge,
    "le": operator.le,
    "ne": operator.ne,
}
# A unit's kind and its factor to the kind's base unit; a currency code is its own kind.
_KINDS = {"wh": ("energy", 1.0), "kwh": ("energy", 1000.0), "w": ("power", 1.0)}
_KINDS |= {"kw": ("power", 1000.0), "%": ("percent", 1.0)}


@dataclass(frozen=True)
class Stated:
    text: str  # as written, with its unit
    value: float
    decimals: int
    unit: str  # lower case; "" when none


@dataclass(frozen=True)
class Verdict:
    sentence: str
    checked: tuple[Stated, ...]  # every figure that passed, computed or the user's
    unsupported: tuple[Stated, ...]
    quoted: tuple[Stated, ...] = ()  # the user's own numbers, repeated as the user's

    @property
    def ok(self) -> bool:
        return not self.unsupported


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def stated(sentence: str, names: Iterable[str] = ()) -> list[Stated]:
    """The figures a sentence states, with their units; `names` are the household's device
    names, whose digits are not figures."""
    return [s for s, _, _ in _found(_masked(sentence, names))]


def _masked(sentence: str, names: Iterable[str]) -> str:
    """The sentence with what is not a figure blanked out, positions kept."""
    masked = _NOT_FIGURES.sub(lambda m: " " * len(m.group()), sentence)
    for name in sorted({n for n in names if any(c.isdigit() for c in n)}, key=len, reverse=True):
        masked = re.sub(re.escape(name), lambda m: " " * len(m.group()), masked, flags=re.I)
    return masked


def _found(masked: str) -> list[tuple[Stated, int, int]]:
    """Each figure with where its number starts and where its unit ends."""
    found = []
    for m in _NUMBER.finditer(masked):
        digits, unit = m.group(1).replace(",", ""), (m.group(2) or "").lower()
        if unit == "percent":
            unit = "%"
        decimals = len(digits.split(".")[1]) if "." in digits else 0
        text = m.group().strip()
        found.append(
            (Stated(text, float(digits), decimals, unit), m.start(), m.start() + len(text))
        )
    return found


def figures(data: Any) -> tuple[list[float], list[float]]:
    """Every number in tool results or context facts (nested dicts and lists), booleans
    aside, in one walk: the measured ones, and the projected ones (under a key that starts
    with "projected"), which a sentence may state only as a projection."""
    measured: list[float] = []
    projected: list[float] = []
    for value, under in _walk(data, False):
        (projected if under else measured).append(value)
    return measured, projected


def facts(data: Any) -> list[float]:
    """The measured numbers of `data` (figures)."""
    return figures(data)[0]


def _walk(data: Any, under: bool) -> Iterator[tuple[float, bool]]:
    if isinstance(data, bool):
        return
    if isinstance(data, int | float):
        if math.isfinite(data):
            yield float(data), under
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _walk(value, under or (isinstance(key, str) and key.startswith("projected")))
    elif isinstance(data, list | tuple):
        for value in data:
            yield from _walk(value, under)


def _scales(unit: str) -> tuple[float, ...]:
    """What a computed figure may have been multiplied by to be written in `unit`."""
    return {
        "wh": (1000.0, 1.0),  # kWh computed, written in Wh (or Wh as computed)
        "kwh": (1.0, 0.001),
        "w": (1.0, 1000.0),
        "kw": (0.001, 1.0),
        "%": (1.0, 100.0),  # a percent as computed, or a fraction written as a percent
    }.get(unit, (1.0, 100.0, 1000.0, 0.001))


def supported(figure: Stated, known: Iterable[float]) -> bool:
    """The figure is a known number in some accepted unit, rounded to the places shown
    (half a unit of the last place either way)."""
    tolerance = 0.5 * 10 ** (-figure.decimals) + 1e-9
    for fact in known:
        for scale in _scales(figure.unit):
            if abs(abs(fact * scale) - abs(figure.value)) <= tolerance:
                return True
    return False


def check(
    sentence: str,
    known: Iterable[float],
    asked: Sequence[Stated] = (),
    names: Iterable[str] = (),
    projected: Iterable[float] = (),
) -> Verdict:
    """Which figures of the sentence the server computed (`known`), which are the user's
    numbers (`asked`, from the user's message) repeated as the user's, and which neither.
    A projected figure (`projected`) counts as computed only in a sentence that says it is
    a projection ("projected", "on course", "expect", ...)."""
    values = list(known)
    if _PROJECTION.search(sentence):
        values += projected
    masked = _masked(sentence, names)
    found = _found(masked)
    # A user's quantity (a number with its unit), repeated no more precisely than they typed
    # it, stays the user's even where it rounds to a computed figure (4 kW asked, 4.1 computed
    # somewhere in the turn): it passes only as theirs. Stated more precisely ("5.00 kWh" to
    # "more than 5 kWh?") it is the server's figure; a bare number ("0", "3") says too little
    # to tell. Both are judged as computed figures first.
    theirs = {
        start
        for f, start, _ in found
        if any(a.unit and f.decimals <= a.decimals and same(f, a) for a in asked)
    }
    computed = [(f, start) for f, start, _ in found if start not in theirs and supported(f, values)]
    computed_at = {start for _, start in computed}
    checked: list[Stated] = []
    quoted: list[Stated] = []
    unsupported: list[Stated] = []
    for figure, start, end in found:
        if start in computed_at:
            checked.append(figure)
        elif any(same(figure, a) for a in asked) and _as_the_users(
            masked, figure, start, end, computed
        ):
            checked.append(figure)
            quoted.append(figure)
        else:
            unsupported.append(figure)
    return Verdict(sentence, tuple(checked), tuple(unsupported), tuple(quoted))


def _kind(figure: Stated) -> tuple[str, float]:
    return _KINDS.get(figure.unit, (figure.unit, 1.0))


def _base(figure: Stated) -> float:
    return figure.value * _kind(figure)[1]


def _comparable(a: Stated, b: Stated) -> bool:
    """Same kind of quantity; a bare number takes the other's unit."""
    return not a.unit or not b.unit or _kind(a)[0] == _kind(b)[0]


def adopt(value: str, asked: Sequence[Stated]) -> tuple[list[float], list[Stated]]:
    """A value the server validated for a proposal or a command ("16 A" of "limit it to 16
    A") is its figure from then on: its numbers, to join the known figures, and `asked`
    without them, no longer only the user's."""
    adopted = stated(value)
    return [f.value for f in adopted], [a for a in asked if not any(same(f, a) for f in adopted)]


def same(figure: Stated, typed: Stated) -> bool:
    """The figure is the user's number `typed`, as rounded or converted for display."""
    if not _comparable(figure, typed):
        return False
    value = _base(typed) / _kind(figure)[1] if figure.unit and typed.unit else typed.value
    return abs(value - figure.value) <= 0.5 * 10.0 ** (-figure.decimals) + 1e-9


def _as_the_users(
    masked: str, figure: Stated, start: int, end: int, computed: list[tuple[Stated, int]]
) -> bool:
    """The user's number `figure` (masked[start:end]) stands in its clause as the user's
    (see the module's docstring), not as a measurement; `computed`: the sentence's computed
    figures and where they start."""
    ends = list(_CLAUSE_END.finditer(masked))
    begin = max((m.end() for m in ends if m.end() <= start), default=0)
    stop = min((m.start() for m in ends if m.start() >= end), default=len(masked))
    before, after = masked[begin:start], masked[end:stop]
    if (m := _COMPARED_BEFORE.search(before)) is not None:
        users_first = False  # "10.26 kWh, less than 999 kWh"
    elif (m := _COMPARED_AFTER.search(after)) is not None:
        users_first = True  # "999 kWh is more than its 10.26 kWh"
    else:
        return bool(
            _ATTRIBUTED.search(before + " " + after)
            or _SETTING_BEFORE.search(before)
            or _SETTING_AFTER.search(after)
            or (_PERIOD_BEFORE.search(before) and _PERIOD_AFTER.search(after))
        )
    # A comparison is a claim about a measurement: the nearest computed figure of the same
    # kind in the sentence must bear it out.
    nearest = min(
        ((abs(at - start), other) for other, at in computed if _comparable(other, figure)),
        key=lambda pair: pair[0],
        default=None,
    )
    if nearest is None or m.lastgroup is None:
        return False
    other = nearest[1]
    if figure.unit and other.unit:
        mine, theirs = _base(figure), _base(other)
    else:
        mine, theirs = figure.value, other.value
    holds = _HOLDS[m.lastgroup]
    return holds(mine, theirs) if users_first else holds(theirs, mine)
