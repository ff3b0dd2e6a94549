"""Verified numbers: every figure a sentence states must be one the server computed for
this turn (the context's facts and the tool results), allowing display rounding and the
unit changes people use: Wh/kWh, W/kW, a fraction as a percent. Times and dates are not
figures and are not checked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
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
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


@dataclass(frozen=True)
class Stated:
    text: str  # as written, with its unit
    value: float
    decimals: int
    unit: str  # lower case; "" when none


@dataclass(frozen=True)
class Verdict:
    sentence: str
    checked: tuple[Stated, ...]
    unsupported: tuple[Stated, ...]

    @property
    def ok(self) -> bool:
        return not self.unsupported


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def stated(sentence: str) -> list[Stated]:
    """The figures a sentence states, with their units."""
    masked = _NOT_FIGURES.sub(lambda m: " " * len(m.group()), sentence)
    found = []
    for m in _NUMBER.finditer(masked):
        digits, unit = m.group(1).replace(",", ""), (m.group(2) or "").lower()
        if unit == "percent":
            unit = "%"
        decimals = len(digits.split(".")[1]) if "." in digits else 0
        found.append(Stated(m.group().strip(), float(digits), decimals, unit))
    return found


def facts(data: Any) -> list[float]:
    """Every number in tool results or context facts (nested dicts and lists), booleans
    aside."""
    return list(_walk(data))


def _walk(data: Any) -> Iterator[float]:
    if isinstance(data, bool):
        return
    if isinstance(data, int | float):
        if math.isfinite(data):
            yield float(data)
    elif isinstance(data, dict):
        for value in data.values():
            yield from _walk(value)
    elif isinstance(data, list | tuple):
        for value in data:
            yield from _walk(value)


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


def check(sentence: str, known: Iterable[float]) -> Verdict:
    values = list(known)
    figures = stated(sentence)
    return Verdict(
        sentence,
        tuple(figures),
        tuple(f for f in figures if not supported(f, values)),
    )
