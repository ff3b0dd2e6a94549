"""The shape of one language's word tables. The tables hold every word and phrase the router
knows; the logic in router/ holds none, so a language is added as a module beside en.py and a
line in router/grammar.py.

Phrases are written as they look after tokenising: lower case, one space between tokens,
punctuation as its own token, a trailing 's already dropped ("today's" reads "today").
Window patterns are regular expressions over that text, with slots in braces (see
`WindowPhrase`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from router.kinds import DeviceKind

Consent = Literal["yes", "no"]
PowerValue = Literal["ON", "OFF"]
WindowKind = Literal[
    "today",
    "yesterday",
    "last_days",
    "days_ago",
    "this_week",
    "last_week",
    "this_month",
    "last_month",
    "since",
    "date",
    "range",
    "before",  # the day (days=1), week (7), month (31) or same span (0) before another window
    "months",  # whole calendar months: a month, a year ("in 2025", "so far this year")
    "season",  # three calendar months, named for the northern hemisphere
    "weeks_ago",  # the Monday-Sunday week `days` weeks back ("the week before last": 2)
    "months_ago",  # the calendar month `days` months back
    "weekdays",  # a weekday range ("from Monday to Wednesday")
]


@dataclass(frozen=True)
class WindowPhrase:
    """A window as a pattern. Slots: {n} a count, {weekday}, {until_weekday} a weekday range's
    last day, {date} a calendar day, {end} a range's last day (a day alone inherits the first
    day's month), {month}, {year}, {season}. The count of last_days, days_ago, weeks_ago and
    months_ago is `days`, or {n} times `unit`.

    Calendar months (kind months, season): `months` of them from the first of {month} (or
    `month`) in {year}, or without a year the most recent such start on or before today; with
    `complete`, the most recent that has ended ("last November", "last year")."""

    pattern: str
    kind: WindowKind
    days: int | None = None
    unit: int = 1
    months: int | None = None
    month: int | None = None
    complete: bool = False


@dataclass(frozen=True)
class Lexicon:
    language: str
    # Tokens: what may follow a day number ("3rd"), the marks that end a clause.
    ordinal_suffixes: tuple[str, ...]
    clause_marks: tuple[str, ...]
    question_mark: str
    # Consent: a whole message made of these phrases (fillers allowed), all of one polarity,
    # declines a proposal ("no") or, with none waiting, is a stray yes or no.
    consent: Mapping[str, Consent]
    consent_fillers: tuple[str, ...]
    # The only messages that confirm a proposal (whole, see router.grammar.strict_yes), and
    # what sounds like assent without being one (words, and a regex a whole word may match).
    consent_yes: tuple[str, ...]
    assent_words: tuple[str, ...]
    assent_pattern: str
    # Clauses: words that start a new one, words dropped before an imperative, question words.
    clause_words: tuple[str, ...]
    request_prefixes: tuple[str, ...]
    question_words: tuple[str, ...]
    report_verbs: tuple[str, ...]
    # Actions. A switch verb takes a particle ("turn ... off"); a direct verb a target ("stop
    # the pump"); a set-point verb a number with a unit ("limit the car to 10 A").
    switch_verbs: Mapping[str, Mapping[str, PowerValue]]
    direct_verbs: Mapping[str, PowerValue]
    setpoint_verbs: tuple[str, ...]
    terse_particles: Mapping[str, PowerValue]
    amp_units: tuple[str, ...]
    percent_units: tuple[str, ...]
    current_words: tuple[str, ...]
    reserve_words: tuple[str, ...]
    reserve_verbs: tuple[str, ...]
    charge_words: tuple[str, ...]
    pronouns: tuple[str, ...]
    all_words: tuple[str, ...]
    determiners: tuple[str, ...]
    target_fillers: tuple[str, ...]
    state_words: tuple[str, ...]
    schedule_words: tuple[str, ...]  # an order for later, which the router cannot route
    exclusion_words: tuple[str, ...]  # "everything except the fridge"
    # Branch vocabulary.
    cost: tuple[str, ...]
    energy: tuple[str, ...]
    injection: tuple[str, ...]
    other_household: tuple[str, ...]
    off_topic: tuple[str, ...]
    # Follow-ups: phrases that open a message continuing the previous question ("and",
    # "what about"), and words that refer back to its window ("that", "it").
    follow_openers: tuple[str, ...]
    back_references: tuple[str, ...]
    compare_words: tuple[str, ...]
    # An explanation (a question unsupported["explain"] finds that router.explain can
    # answer): the words that make its baseline the usual (the mean of several periods
    # before) rather than the previous period, and the word before a baseline window.
    usual_words: tuple[str, ...]
    than_words: tuple[str, ...]
    # With a money word, a question about the cost ahead ("what will today cost me?"): a
    # projection (router.project), or unsupported.projection.
    future_words: tuple[str, ...]
    # A period after the running one ("next month", "tomorrow"): never projected.
    later_words: tuple[str, ...]
    # What a period has cost up to now ("how much will today cost me so far"): measured.
    so_far: tuple[str, ...]
    # Questions wattwise has no computation for yet, by rule suffix (rule unsupported.<kind>):
    # answered with what it can do instead, never with a nearby figure.
    unsupported: Mapping[str, tuple[str, ...]]
    # Rule suffix -> phrases; a phrase ending in "*" takes the rest of the message.
    smalltalk: Mapping[str, tuple[str, ...]]
    smalltalk_fillers: tuple[str, ...]
    # Devices: words naming a kind, words never used to recognise a device, and plural
    # endings with their singular (the first that fits applies; "ss" -> "ss" guards "glass").
    kind_words: Mapping[str, DeviceKind]
    common_words: tuple[str, ...]
    plural_endings: tuple[tuple[str, str], ...]
    # Windows.
    numbers: Mapping[str, int]
    months: Mapping[str, int]
    weekdays: Mapping[str, int]  # Monday is 0
    seasons: Mapping[str, int]  # the first month of each, in the northern hemisphere
    date_forms: tuple[str, ...]  # slots {iso}, {day}, {ordinal}, {month}, {year}
    windows: tuple[WindowPhrase, ...]  # tried in order at each position
    # Common words that still mark where a window may stand ("this year", "the one before"):
    # every window phrase has a word among its first few that is not a common one, or one
    # of these.
    window_anchors: tuple[str, ...] = ()
